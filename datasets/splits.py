"""Seeded train/validation carving, independent of the global RNG state."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Subset, TensorDataset


def seeded_permutation(n: int, seed: int, salt: int = 0) -> torch.Tensor:
    """A permutation of range(n) fixed by (seed, salt) alone."""
    gen = torch.Generator().manual_seed(1_000_003 * seed + salt)
    return torch.randperm(n, generator=gen)


def take(dataset: Dataset, index: torch.Tensor) -> Dataset:
    if isinstance(dataset, TensorDataset):  # keep tensors contiguous: the fast batching path needs them
        return TensorDataset(*(t[index] for t in dataset.tensors))
    return Subset(dataset, index.tolist())


def carve_validation(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split off `fraction` of the training data as validation; the same for every method at this seed."""
    n = len(train)
    n_val = max(1, round(n * fraction))
    if n_val >= n:
        raise ValueError(f"cannot carve {n_val} validation samples out of {n}")
    perm = seeded_permutation(n, seed, salt=7)
    return take(train, perm[n_val:].sort().values), take(train, perm[:n_val].sort().values)
