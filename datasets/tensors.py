"""Helpers for datasets held as tensors: standardisation with training statistics, fixed test splits."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset


def statistics_of(x: torch.Tensor, dims: tuple[int, ...]) -> dict:
    """Mean and std of `x` over `dims`, one value per kept index (JSON-ready, for the run file)."""
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return {"dims": list(dims), "mean": mean.flatten().tolist(), "std": std.flatten().tolist()}


def normalise(x: torch.Tensor, statistics: dict) -> torch.Tensor:
    shape = [1 if d in statistics["dims"] else n for d, n in enumerate(x.shape)]
    mean = torch.tensor(statistics["mean"], dtype=x.dtype).view(shape)
    return (x - mean) / torch.tensor(statistics["std"], dtype=x.dtype).view(shape)


def standardise(train_x: torch.Tensor, *others: torch.Tensor, dims=(0, 2)) -> list[torch.Tensor]:
    """Normalise every split with the training split's mean/std per channel (dims reduced)."""
    stats = statistics_of(train_x, dims)
    return [normalise(t, stats) for t in (train_x, *others)]


def apply_standardise(splits, dims: tuple[int, ...], statistics: dict | None = None):
    """Standardise TensorDataset splits with the first split's statistics over `dims` (or the given ones).

    Returns the new splits and the statistics used, for the run file and for loading another
    resolution with the same normalisation.
    """
    statistics = statistics or statistics_of(splits[0].tensors[0], dims)
    return [TensorDataset(normalise(s.tensors[0], statistics), *s.tensors[1:]) for s in splits], statistics


def fixed_split(n: int, test_fraction: float, salt: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """A train/test split that never changes with the run seed, so test sets are comparable across seeds."""
    perm = np.random.default_rng(salt).permutation(n)
    n_test = round(n * test_fraction)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def tensor_dataset(x, y) -> TensorDataset:
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y)
    y = y.float() if y.is_floating_point() else y.long()
    return TensorDataset(x.contiguous(), y.contiguous())
