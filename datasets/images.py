"""Image datasets from uint8 arrays: normalisation, resizing for the cross-resolution protocol, augmentation.

Every image loader reads its files into (N, C, H, W) uint8 tensors and hands them to
`image_loaded`. Resizing is bilinear with antialiasing (what torchvision's Resize does to the
PIL images of the reference pipelines); as it is linear with weights summing to one, it
commutes with the per-channel normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from bench.base import UserError
from datasets.arrays import ArrayDataset
from datasets.augment import CropFlip
from datasets.base import Loaded
from datasets.real import flag
from datasets.tensors import tensor_dataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMS = ("paper", "train")  # the papers' constants, or this training split's per-channel statistics
CHUNK = 4096  # images converted at once when building in-memory tensors


def check_norm(name: str, norm: str) -> None:
    if norm not in NORMS:
        raise UserError(f"dataset {name!r}: norm must be one of {', '.join(NORMS)}, got {norm!r}")


def check_options(name: str, *, norm: str = "paper", resolution: int | None = None, augment=False) -> bool:
    """Validate the image options before any file is read; returns `augment` as a bool."""
    check_norm(name, norm)
    if resolution is not None and (
        not isinstance(resolution, int) or isinstance(resolution, bool) or not 4 <= resolution <= 512
    ):
        raise UserError(f"dataset {name!r}: resolution must be an integer in [4, 512] pixels, got {resolution!r}")
    return flag(name, "augment", augment)


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images scaled to [0, 1], accumulated in float64 by chunks."""
    c = images.shape[1]
    total, total_sq, count = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    for start in range(0, len(images), CHUNK):
        chunk = images[start : start + CHUNK].to(torch.float64) / 255.0
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
        count += chunk.numel() // c
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


class ToFloat:
    """uint8 (B, C, H, W) -> normalised float32, resized to `size` when it differs."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], size: int | None):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.size = size

    def __call__(self, images: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        x = images.to(torch.float32) / 255.0
        if self.size is not None and x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def all(self, images: torch.Tensor) -> torch.Tensor:
        """The whole array, converted by chunks so that no float64/uint8 copy of it is made."""
        return torch.cat([self(images[s : s + CHUNK]) for s in range(0, len(images), CHUNK)])


def image_loaded(
    name: str,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    paper_stats: tuple[Sequence[float], Sequence[float]] | None,
    norm: str = "paper",
    resolution: int | None = None,
    augment: bool = False,
    lazy: bool = False,
    info: dict | None = None,
) -> Loaded:
    """A 2D classification task from uint8 images; `paper_stats` None means the papers used training statistics.

    lazy: keep uint8 and convert per batch (large sets); else build float32 tensors (fast batching).
    augment: CropFlip with padding 4 at 32 px, scaled with the resolution so it shifts the same
    fraction of the image at every size.
    """
    augment = check_options(name, norm=norm, resolution=resolution, augment=augment)
    native = train[0].shape[-1]
    size = native if resolution is None else resolution
    pad = max(1, round(4 * size / 32))
    details = {"native_resolution": native, "resolution": size, **(info or {})}
    if norm == "paper" and paper_stats is not None:  # the papers' constants: known before any split
        mean, std = paper_stats
        to_float = ToFloat(mean, std, size)
        if lazy:
            train_ds, test_ds = (ArrayDataset(x, y.long(), to_float) for x, y in (train, test))
        else:
            train_ds, test_ds = (tensor_dataset(to_float.all(x), y.long()) for x, y in (train, test))
        crop_flip = CropFlip(pad, [-m / s for m, s in zip(mean, std)]) if augment else None  # black, normalised
        details.update(norm_mean=[round(m, 6) for m in mean], norm_std=[round(s, 6) for s in std])
        details["augment"] = repr(crop_flip) if augment else None
        return Loaded(train_ds, test_ds, augment=crop_flip, info=details)
    # training statistics: fitted by get_dataset on the training part, after the validation carve
    channels = train[0].shape[1]
    to_float = ToFloat([0.0] * channels, [1.0] * channels, size)
    crop_flip = CropFlip(pad, [0.0] * channels) if augment else None
    train_ds, test_ds = (ArrayDataset(x, y.long(), to_float) for x, y in (train, test))

    def fit(splits, statistics=None):
        if statistics is None:
            mean, std = channel_stats(uint8_of(splits[0])[0])
            statistics = {"dims": [0, 2, 3], "mean": mean, "std": std}
        mean, std = statistics["mean"], statistics["std"]
        to_float.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        to_float.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        if crop_flip is not None:
            crop_flip.fill = [-m / s for m, s in zip(mean, std)]  # a black pixel after normalisation
        details.update(norm_mean=[round(m, 6) for m in mean], norm_std=[round(s, 6) for s in std])
        details["augment"] = repr(crop_flip) if augment else None
        if not lazy:  # float tensors for fast batching, built once the statistics are known
            splits = tuple(tensor_dataset(to_float.all(x), y) for x, y in map(uint8_of, splits))
        return splits, statistics

    return Loaded(train_ds, test_ds, augment=crop_flip, info=details, fit_normalisation=fit)


def uint8_of(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The stored images and labels of an ArrayDataset, or of the Subset of one that a validation carve made."""
    if isinstance(dataset, Subset):
        idx = torch.as_tensor(dataset.indices, dtype=torch.long)
        return dataset.dataset.store[idx], dataset.dataset.targets[idx]
    return dataset.store, dataset.targets
