"""CIFAR-10 and CIFAR-100 as images (`cifar10`, `cifar100`) and as sequences (`scifar10`, `npcifar10`).

Files: torchvision's layout under the data root (cifar-10-batches-py/, cifar-100-python/: the
pickled batches of the official tar.gz), downloaded by torchvision.datasets.CIFAR10/100
(checksummed) when missing. The batches are read here, so a copy is used as it is.

Normalisation "paper": CKConv and FlexConv normalise CIFAR-10 (2D, sCIFAR10, npCIFAR10) with
the ImageNet mean/std; for CIFAR-100 (CCNN) the training statistics. norm="train" uses the
training statistics everywhere (CCNN's choice for sCIFAR10).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from datasets import register_dataset
from datasets.arrays import ArrayDataset
from datasets.base import Loaded
from datasets.images import IMAGENET_MEAN, IMAGENET_STD, ToFloat, check_norm, check_options, image_loaded
from datasets.real import flag, reading, require_files
from datasets.tensors import tensor_dataset

LAYOUT = {  # classes -> (torchvision class, folder, train files, test files, label key)
    10: ("CIFAR10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"),
    100: ("CIFAR100", "cifar-100-python", ["train"], ["test"], "fine_labels"),
}
NPCIFAR_LENGTH = 1000  # 32 image rows, then noise steps
NOISE_SALTS = {"train": 1, "test": 2, "shared": 3}


# What the official batches (and torchvision's copies, and any numpy since) pickle: dicts, lists, bytes and
# numpy arrays. Nothing else is imported while reading them: a data folder may be shared, and a planted file
# must not run code (any other global is an error naming the file).
ARRAY_GLOBALS = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")} | {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # how protocol 2 writes bytes from Python 3
}  # fmt: skip


class BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch (arrays only)")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):  # numpy 2 moved numpy.core to numpy._core
            module = "numpy._core." + module.split(".", 2)[2]
        return super().find_class(module, name)


def cifar_arrays(name: str, data_root: Path, classes: int, download: bool):
    """((train images, labels), (test images, labels)): (N, 3, 32, 32) uint8 and int64."""
    import torchvision.datasets  # lazy: +1.2 s, only to download (`run_all.py list` imports every dataset module)

    cls_name, folder_name, train_files, test_files, label_key = LAYOUT[classes]
    cls = getattr(torchvision.datasets, cls_name)
    folder = Path(data_root) / folder_name
    hint = (
        f"Put the contents of {cls.url.rsplit('/', 1)[-1]} ({folder_name}/ with {', '.join(train_files + test_files)}) "
        f"under {Path(data_root)}, run once with internet (option download, on by default), "
        "or point --data-root / LKSBENCH_DATA at a folder that has them."
    )
    require_files(
        name,
        folder,
        train_files + test_files,
        hint=hint,
        download=download,
        fetch=lambda: cls(str(data_root), train=True, download=True),
        url=cls.url,
    )
    out = []
    for files in (train_files, test_files):
        xs, ys = [], []
        for f in files:
            with reading(name, folder / f, hint):
                with open(folder / f, "rb") as fh:
                    batch = BatchUnpickler(fh, encoding="latin1").load()
                xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(batch[label_key], dtype=np.int64))
                if len(xs[-1]) != len(ys[-1]):
                    raise ValueError(f"{len(xs[-1])} images but {len(ys[-1])} labels")
        out.append((torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))))
    return out


def sequence_stats(norm: str):
    """The sequence papers normalise CIFAR-10 with the ImageNet statistics; norm="train" first scales to [0, 1]
    and leaves the training part's statistics to get_dataset (after the validation carve)."""
    return (IMAGENET_MEAN, IMAGENET_STD) if norm == "paper" else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


@register_dataset(
    "cifar10",
    description="CIFAR-10 images (50k/10k); augment: crop pad 4 + flip; option resolution (bilinear)",
    shape=(3, 32, 32),
    classes=10,
    source="download",
    paper_name="CIFAR-10",
)
def cifar10(*, seed, data_root, resolution: int = 32, augment: bool = True, norm: str = "paper", download: bool = True):
    check_options("cifar10", norm=norm, resolution=resolution, augment=augment)
    train, test = cifar_arrays("cifar10", data_root, 10, download)
    return image_loaded(
        "cifar10", train, test, paper_stats=(IMAGENET_MEAN, IMAGENET_STD), norm=norm,
        resolution=resolution, augment=augment,
    )  # fmt: skip


@register_dataset(
    "cifar100",
    description="CIFAR-100 images, fine labels (50k/10k); augment: crop pad 4 + flip; option resolution",
    shape=(3, 32, 32),
    classes=100,
    source="download",
    paper_name="CIFAR-100",
)
def cifar100(
    *, seed, data_root, resolution: int = 32, augment: bool = True, norm: str = "paper", download: bool = True
):
    check_options("cifar100", norm=norm, resolution=resolution, augment=augment)
    train, test = cifar_arrays("cifar100", data_root, 100, download)
    return image_loaded("cifar100", train, test, paper_stats=None, norm=norm, resolution=resolution, augment=augment)


@register_dataset(
    "scifar10",
    description="sequential CIFAR-10: pixels in row-major order, 1024 steps of 3 channels (causal)",
    shape=(3, 1024),
    classes=10,
    source="download",
    paper_name="sCIFAR10",
    causal=True,
)
def scifar10(*, seed, data_root, norm: str = "paper", download: bool = True):
    check_norm("scifar10", norm)
    (xtr, ytr), (xte, yte) = cifar_arrays("scifar10", data_root, 10, download)
    # norm="train": scaled to [0, 1] here, standardised per channel by get_dataset on the training part
    to_float = ToFloat(*sequence_stats(norm), size=None)
    xtr, xte = (to_float.all(x).reshape(len(x), 3, 1024) for x in (xtr, xte))
    return Loaded(tensor_dataset(xtr, ytr), tensor_dataset(xte, yte), standardise=None if norm == "paper" else (0, 2))


class NoisePad:
    """Appends N(0, 1) steps to a (B, 96, 32) batch of image rows, up to `length` steps.

    Per-sample noise (default) is drawn from a generator seeded by (seed, split, sample index):
    fixed for a sample across epochs and batch orders, different between samples. `shared`
    replaces it with one tensor for every sample of every split, as the reference code does.
    """

    def __init__(self, length: int, seed: int, salt: int, shared: torch.Tensor | None = None):
        self.length, self.base, self.shared = length, (seed * 1_000_003 + salt) * 2**24, shared

    def __call__(self, rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        b, c, t = rows.shape
        if self.shared is not None:
            noise = self.shared.expand(b, c, self.length - t)
        else:
            noise = torch.stack(
                [
                    torch.randn(c, self.length - t, generator=torch.Generator().manual_seed((self.base + i) % 2**63))
                    for i in index.tolist()
                ]
            )
        return torch.cat([rows, noise], dim=-1)


@register_dataset(
    "npcifar10",
    description="noise-padded CIFAR-10: 32 rows of 96 features, then Gaussian noise steps to 1000 (causal)",
    shape=(96, 1000),
    classes=10,
    source="download",
    paper_name="npCIFAR10",
    causal=True,
)
def npcifar10(*, seed, data_root, norm: str = "paper", shared_noise: bool = False, download: bool = True):
    """Step t is image row t, its 96 features are (channel, column); then 968 noise steps.

    The reference (FlexConv trainer.py) draws one noise tensor per run, shared by every image
    (and redrawn for its final test). Here the noise is drawn per sample, so it cannot be
    memorised as a constant; shared_noise=True gives the reference's single tensor instead,
    drawn from the seed and kept for train, val and test. Noise is generated per batch.
    """
    check_norm("npcifar10", norm)
    shared_noise = flag("npcifar10", "shared_noise", shared_noise)
    (xtr, ytr), (xte, yte) = cifar_arrays("npcifar10", data_root, 10, download)
    to_float = ToFloat(*sequence_stats(norm), size=None)
    rows = [to_float.all(x).transpose(2, 3).reshape(len(x), 96, 32).contiguous() for x in (xtr, xte)]
    shared = None
    if shared_noise:
        gen = torch.Generator().manual_seed((seed * 1_000_003 + NOISE_SALTS["shared"]) % 2**63)
        shared = torch.randn(96, NPCIFAR_LENGTH - 32, generator=gen)
    train = ArrayDataset(rows[0], ytr, NoisePad(NPCIFAR_LENGTH, seed, NOISE_SALTS["train"], shared))
    test = ArrayDataset(rows[1], yte, NoisePad(NPCIFAR_LENGTH, seed, NOISE_SALTS["test"], shared))
    info = {"noise": "per-sample" if shared is None else "shared", "noise_seed": seed}
    fit = None if norm == "paper" else lambda splits, statistics=None: _fit_rows(rows, splits, statistics)
    return Loaded(train, test, info=info, fit_normalisation=fit)


def _fit_rows(rows: list[torch.Tensor], splits, statistics=None):
    """norm="train" for npCIFAR10: per-channel statistics of the training part's rows (features c * 32 + w),
    applied in place to the stored rows of every split (the noise steps stay N(0, 1))."""
    train = splits[0]
    idx = torch.as_tensor(train.indices, dtype=torch.long) if hasattr(train, "indices") else slice(None)
    if statistics is None:
        part = rows[0][idx].reshape(-1, 3, 32, 32).to(torch.float64)
        mean, std = part.mean((0, 2, 3)), part.std((0, 2, 3)).clamp_min(1e-6)
        statistics = {"dims": [0, 2, 3], "mean": mean.tolist(), "std": std.tolist()}
    mean = torch.tensor(statistics["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(statistics["std"], dtype=torch.float32).view(1, 3, 1, 1)
    for r in rows:
        view = r.view(len(r), 3, 32, 32)
        view.sub_(mean).div_(std)
    return splits, statistics
