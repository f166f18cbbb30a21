"""Missing data, as the CKConv paper's `drop_rate` experiments (after Kidger et al.'s Neural CDE setting).

Each sequence loses int(L * drop_rate) of its L time steps (all channels of a step at once), chosen
at random but fixed per example: the positions dropped from example i of a split depend only on
(drop_seed, split, i, L, drop_rate), never on the run seed, the batch order or the validation carve,
so every method and every run seed sees the same corrupted task (as CKConv, whose one generator is
seeded 56789; its draws follow the loading order, ours the example's index). Train, validation and
test are corrupted alike.

Representation (CKConv's, experiments.md 2b): the dropped steps are left out of the normalisation
statistics, then set to zero, and one mask channel (1 = observed, 0 = dropped) is appended, so a
C-channel sequence becomes C + 1 channels of the same length. Steps are not removed and no time
channel is added: the grid stays regular, which every convolution in the suite needs; the mask
tells a zero that was measured from one that was not. (Neural CDE instead keeps a time channel and
interpolates; that suits a continuous-time model, not a convolution.)
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from bench.base import UserError

DROP_SEED = 56789  # CKConv's generator seed
SPLIT_SALT = {"train": 0, "val": 1, "test": 2}


def check_rate(name: str, drop_rate) -> float:
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, (int, float)) or not 0 <= drop_rate < 1:
        raise UserError(f"dataset {name!r}: drop_rate must be a number in [0, 1), got {drop_rate!r}")
    return float(drop_rate)


def dropped_count(length: int, drop_rate: float) -> int:
    return int(length * drop_rate)


def observed_mask(indices, length: int, drop_rate: float, split: str = "train", drop_seed: int = DROP_SEED):
    """(len(indices), length) bool: False at the steps dropped from each example `indices[i]` of `split`."""
    index = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
    mask = torch.ones(len(index), length, dtype=torch.bool)
    k = dropped_count(length, drop_rate)
    if k == 0:
        return mask
    gen = torch.Generator()
    base = (drop_seed * 1_000_003 + SPLIT_SALT[split] * 7_919 + length) * 1_000_033
    for row, i in enumerate(index.tolist()):
        gen.manual_seed(base + i)
        mask[row, torch.randperm(length, generator=gen)[:k]] = False
    return mask


def mark(x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """x (N, C, L) with the dropped steps zeroed and the mask channel appended: (N, C + 1, L)."""
    keep = observed.unsqueeze(1).to(x.dtype)
    return torch.cat([x * keep, keep], dim=1)


def with_nans(x: torch.Tensor, split: str, drop_rate: float, drop_seed: int = DROP_SEED) -> torch.Tensor:
    """x (N, C, L) float with NaN at the dropped steps of each example (index = position in x)."""
    observed = observed_mask(torch.arange(len(x)), x.shape[-1], drop_rate, split, drop_seed)
    return x.masked_fill(~observed.unsqueeze(1), float("nan"))


def observed_statistics(x: torch.Tensor) -> dict:
    """Mean and std per channel of x (N, C, L) over the steps that are not NaN (the observed ones)."""
    values = x.transpose(0, 1).reshape(x.shape[1], -1).double()
    seen = ~values.isnan()
    count = seen.sum(1).clamp_min(1)
    mean = values.nan_to_num().sum(1) / count
    var = ((values - mean[:, None]).nan_to_num() ** 2).sum(1) / (count - 1).clamp_min(1)
    return {"dims": [0, 2], "mean": mean.tolist(), "std": var.sqrt().clamp_min(1e-6).tolist(), "observed_only": True}


def fit_marked(splits, statistics: dict | None = None):
    """Loaded.fit_normalisation for TensorDatasets holding NaN at dropped steps: standardise each channel with
    the training part's observed steps (or the given statistics), zero the dropped steps, append the mask."""
    return fit_observed(splits, statistics, mark_dropped=True)


def fit_observed(splits, statistics: dict | None = None, mark_dropped: bool = False):
    """Loaded.fit_normalisation for TensorDatasets holding NaN where nothing was measured: standardise each
    channel with the training part's observed steps (or the given statistics), then NaN -> 0; with
    `mark_dropped`, a step missing from every channel is marked in an appended mask channel."""
    stats = statistics or observed_statistics(splits[0].tensors[0])
    out = []
    for s in splits:
        x = s.tensors[0]
        mean = torch.tensor(stats["mean"], dtype=x.dtype).view(1, -1, 1)
        std = torch.tensor(stats["std"], dtype=x.dtype).view(1, -1, 1)
        z = ((x - mean) / std).nan_to_num()
        out.append(TensorDataset(mark(z, ~x.isnan().any(1)) if mark_dropped else z, *s.tensors[1:]))
    return out, stats
