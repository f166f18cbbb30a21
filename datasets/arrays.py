"""A dataset kept in compact storage (uint8 images, int16 audio) and turned into float a batch at a time.

Float32 copies of ImageNet-32 (16 GB), of Speech Commands raw (2.2 GB) or of npCIFAR10 with
its noise (19 GB) would not fit in memory. DataLoader asks `__getitems__` for a whole batch
(torch >= 2.1, and Subset forwards it), so the conversion is one vectorised call per batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset


class ArrayDataset(Dataset):
    """Samples `store[i]` with labels `targets[i]`; `transform(store[idx], idx)` makes the float batch."""

    def __init__(self, store: torch.Tensor, targets: torch.Tensor, transform: Callable):
        if len(store) != len(targets):
            raise ValueError(f"{len(store)} samples but {len(targets)} targets")
        self.store, self.targets, self.transform = store, targets, transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        x = self.transform(self.store[idx], idx)
        return list(zip(x.unbind(0), self.targets[idx].unbind(0)))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([int(index)])[0]

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples `indices` as stacked (x, y), e.g. for statistics and tests."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.transform(self.store[idx], idx), self.targets[idx]
