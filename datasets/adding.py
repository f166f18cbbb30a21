"""The adding problem (Hochreiter & Schmidhuber, 1997): regress the sum of two marked values."""

from __future__ import annotations

import torch

from bench.base import UserError
from datasets import register_dataset
from datasets.base import Loaded
from datasets.tensors import tensor_dataset


def adding_samples(n: int, length: int, generator: torch.Generator):
    """Channel 0: U(0,1) values; channel 1: two markers, one in each half. Target: the sum of the marked values."""
    values = torch.rand(n, length, generator=generator)
    first = torch.randint(0, length // 2, (n,), generator=generator)
    second = torch.randint(length // 2, length, (n,), generator=generator)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = (values * markers).sum(1, keepdim=True)
    return torch.stack([values, markers], 1), target


@register_dataset(
    "adding",
    description="adding problem: sum of two marked values (regression, MSE; option length, default 1000)",
    shape=(2, 1000),
    classes=None,
    causal=True,
    metric="mse",
)
def adding(*, seed, data_root, length: int = 1000, n_train: int = 5000, n_test: int = 1000):
    if length < 2 or n_train < 10 or n_test < 1:
        raise UserError(f"adding needs length >= 2, n_train >= 10, n_test >= 1; got {length}, {n_train}, {n_test}")
    # the data is fixed by its own seed, not the run seed: every run sees the same problem
    gen = torch.Generator().manual_seed(20_240_000 + length)
    train = tensor_dataset(*adding_samples(n_train, length, gen))
    test = tensor_dataset(*adding_samples(n_test, length, gen))
    return Loaded(train, test)
