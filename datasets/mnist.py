"""MNIST as images (`mnist`, 1 x 28 x 28), pixel sequences (`smnist`, 1 x 784) and permuted sequences (`pmnist`).

Files: <data root>/MNIST/raw/ in torchvision's layout (the four idx files, unzipped or .gz),
downloaded by torchvision.datasets.MNIST (checksummed) when missing. Normalisation with the
papers' (0.1307, 0.3081), which are the MNIST training-set mean and std.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from datasets import register_dataset
from datasets.base import Loaded
from datasets.images import check_options, image_loaded
from datasets.real import reading, require_files
from datasets.splits import seeded_permutation
from datasets.tensors import tensor_dataset

MEAN, STD = 0.1307, 0.3081
FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
PMNIST_SALT = 784  # keeps the permutation's random stream apart from the validation carving's


def mnist_arrays(name: str, data_root: Path, download: bool):
    """((train images, labels), (test images, labels)): (N, 1, 28, 28) uint8 and int64."""
    from torchvision.datasets import MNIST  # lazy: +1.2 s, only to download (`run_all.py list` imports this module)

    folder = Path(data_root) / "MNIST" / "raw"
    for f in FILES:  # torchvision reads the unzipped files; unzip .gz copies placed by hand
        if not (folder / f).exists() and (folder / f"{f}.gz").exists():
            with gzip.open(folder / f"{f}.gz", "rb") as src, open(folder / f, "wb") as dst:
                shutil.copyfileobj(src, dst)
    hint = (
        f"Put the four MNIST idx files ({', '.join(FILES)}, or their .gz) in {folder}, run once with internet "
        "(option download, on by default), or point --data-root / LKSBENCH_DATA at a folder holding MNIST/raw/."
    )
    require_files(
        name,
        folder,
        FILES,
        hint=hint,
        download=download,
        fetch=lambda: MNIST(str(data_root), train=True, download=True),
        url=MNIST.mirrors[0],
    )
    out = []
    for train in (True, False):
        with reading(name, folder, hint):
            ds = MNIST(str(data_root), train=train, download=False)
        out.append((ds.data[:, None].contiguous(), ds.targets.long()))
    return out


def sequences(name: str, data_root: Path, download: bool):
    """(train, test) as (N, 1, 784) float32, normalised, read row by row."""
    (xtr, ytr), (xte, yte) = mnist_arrays(name, data_root, download)
    return [((x.reshape(len(x), 1, 784).float() / 255.0 - MEAN) / STD, y) for x, y in ((xtr, ytr), (xte, yte))]


@register_dataset(
    "mnist",
    description="MNIST digits as 2D images (60k/10k; option resolution resizes, bilinear)",
    shape=(1, 28, 28),
    classes=10,
    source="download",
    paper_name="MNIST",
)
def mnist(*, seed, data_root, resolution: int = 28, download: bool = True):
    check_options("mnist", resolution=resolution)
    train, test = mnist_arrays("mnist", data_root, download)
    return image_loaded("mnist", train, test, paper_stats=([MEAN], [STD]), resolution=resolution)


@register_dataset(
    "smnist",
    description="sequential MNIST: pixels in row-major order, 784 steps (causal)",
    shape=(1, 784),
    classes=10,
    source="download",
    paper_name="sMNIST",
    causal=True,
)
def smnist(*, seed, data_root, download: bool = True):
    (xtr, ytr), (xte, yte) = sequences("smnist", data_root, download)
    return Loaded(tensor_dataset(xtr, ytr), tensor_dataset(xte, yte))


@register_dataset(
    "pmnist",
    description="permuted MNIST: sMNIST with one fixed pixel permutation from the run seed (causal)",
    shape=(1, 784),
    classes=10,
    source="download",
    paper_name="pMNIST",
    causal=True,
)
def pmnist(*, seed, data_root, download: bool = True):
    """The same permutation for train, val and test (the reference code redraws it for its final test)."""
    (xtr, ytr), (xte, yte) = sequences("pmnist", data_root, download)
    perm = seeded_permutation(784, seed, salt=PMNIST_SALT)
    info = {"permutation_seed": seed, "permutation": perm.tolist()}
    return Loaded(tensor_dataset(xtr[..., perm], ytr), tensor_dataset(xte[..., perm], yte), info=info)
