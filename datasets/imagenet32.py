"""ImageNet-32 (`imagenet32`): the downsampled ImageNet of Chrabaszcz et al. (2017), 1000 classes at 32 x 32.

The files need an ImageNet login, so there is no download: on https://image-net.org/download-images.php
take "Downsampled ImageNet 32x32 (npz)", i.e. Imagenet32_train_npz.zip and Imagenet32_val_npz.zip,
and unzip both into <data root>/imagenet32/ (sub-folders are fine). The loader looks there for
train_data_batch_1.npz ... train_data_batch_10.npz and val_data.npz; each holds 'data'
(N x 3072 uint8, the R, G and B planes of a 32 x 32 image) and 'labels' (1..1000).

The 1.28M training images stay uint8 (3.9 GB) and are converted per batch (float32 would
need 16 GB). The official validation set is the test set; the validation split is carved
from training (train.val_fraction; 0.1 is 128k images, 0.02 is plenty). Normalisation with
the ImageNet mean/std, augmentation "resnet" (crop pad 4 + flip) as FlexConv's runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench.base import UserError
from datasets import register_dataset
from datasets.images import IMAGENET_MEAN, IMAGENET_STD, check_options, image_loaded
from datasets.real import reading

TRAIN_FILES = [f"train_data_batch_{i}.npz" for i in range(1, 11)]
TEST_FILE = "val_data.npz"


def find(folder: Path, names: list[str]) -> dict[str, Path]:
    """name -> the first file of that name anywhere under `folder` (the zips unpack into sub-folders)."""
    found: dict[str, Path] = {}
    if folder.is_dir():
        for path in sorted(folder.rglob("*.npz")):
            if path.name in names:
                found.setdefault(path.name, path)
    return found


def read_npz(name: str, paths: list[Path], hint: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate the batches into one preallocated array (no second 3.9 GB copy)."""
    labels = []
    for path in paths:
        with reading(name, path, hint), np.load(path) as f:
            labels.append(np.asarray(f["labels"], dtype=np.int64).reshape(-1) - 1)
    images = np.empty((sum(len(lab) for lab in labels), 3072), dtype=np.uint8)
    start = 0
    for path, lab in zip(paths, labels):
        with reading(name, path, hint), np.load(path) as f:
            data = f["data"]
            if data.shape != (len(lab), 3072) or lab.min() < 0 or lab.max() > 999:
                raise ValueError(f"'data' is {data.shape} with labels in [{lab.min() + 1}, {lab.max() + 1}]; "
                                 f"expected ({len(lab)}, 3072) uint8 and labels 1..1000")  # fmt: skip
            images[start : start + len(lab)] = data
        start += len(lab)
    return torch.from_numpy(images).view(-1, 3, 32, 32), torch.from_numpy(np.concatenate(labels))


@register_dataset(
    "imagenet32",
    description="downsampled ImageNet 32x32 (1.28M/50k, 1000 classes; manual download, see its docstring)",
    shape=(3, 32, 32),
    classes=1000,
    source="manual",
    paper_name="ImageNet-32",
)
def imagenet32(*, seed, data_root, resolution: int = 32, augment: bool = True, norm: str = "paper"):
    check_options("imagenet32", norm=norm, resolution=resolution, augment=augment)
    folder = Path(data_root) / "imagenet32"
    hint = (
        "ImageNet-32 needs a login, so it is not downloaded: from https://image-net.org/download-images.php take "
        "'Downsampled ImageNet 32x32' (Imagenet32_train_npz.zip, Imagenet32_val_npz.zip) and unzip both into "
        f"{folder} (or point --data-root / LKSBENCH_DATA at the folder that holds imagenet32/)."
    )
    found = find(folder, [*TRAIN_FILES, TEST_FILE])
    missing = [n for n in [*TRAIN_FILES, TEST_FILE] if n not in found]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise UserError(f"dataset 'imagenet32': {shown} not found in {folder}. {hint}")
    train = read_npz("imagenet32", [found[n] for n in TRAIN_FILES], hint)
    test = read_npz("imagenet32", [found[TEST_FILE]], hint)
    return image_loaded(
        "imagenet32", train, test, paper_stats=(IMAGENET_MEAN, IMAGENET_STD), norm=norm,
        resolution=resolution, augment=augment, lazy=True,
    )  # fmt: skip
