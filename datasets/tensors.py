"""Helpers for datasets held as tensors: standardisation with training statistics, fixed test splits."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset


def standardise(train_x: torch.Tensor, *others: torch.Tensor, dims=(0, 2)) -> list[torch.Tensor]:
    """Normalise every split with the training split's mean/std per channel (dims reduced)."""
    mean = train_x.mean(dim=dims, keepdim=True)
    std = train_x.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return [(t - mean) / std for t in (train_x, *others)]


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
