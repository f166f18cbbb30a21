"""Batch augmentations `(x, y, generator) -> (x, y)`, applied by the harness to training batches only.

Random numbers are drawn on the CPU `generator` (so they follow the run seed, whatever the
device) and moved to the batch's device; the pixels never leave it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


class CropFlip:
    """The papers' "resnet" augmentation: RandomCrop(size, padding=pad) then RandomHorizontalFlip.

    The images are already normalised, so the padding takes `fill`, the normalised value of a
    black pixel per channel: what torchvision's zero padding of the raw image becomes.
    """

    def __init__(self, pad: int, fill: Sequence[float], flip: bool = True):
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.pad, self.fill, self.flip = int(pad), [float(f) for f in fill], flip

    def __repr__(self) -> str:
        return f"CropFlip(pad={self.pad}, flip={self.flip})"

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
        b, c, h, w = x.shape
        p = self.pad
        top = torch.randint(0, 2 * p + 1, (b,), generator=generator)
        left = torch.randint(0, 2 * p + 1, (b,), generator=generator)
        flip = torch.rand(b, generator=generator) < 0.5 if self.flip else torch.zeros(b, dtype=torch.bool)
        fill = torch.tensor(self.fill, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
        padded = F.pad(x - fill, (p, p, p, p)) + fill  # pad with `fill`, per channel
        cols = torch.arange(w)
        cols = torch.where(flip[:, None], cols.flip(0), cols) + left[:, None]  # (b, w)
        rows = torch.arange(h) + top[:, None]  # (b, h)
        rows, cols = rows.to(x.device), cols.to(x.device)
        batch = torch.arange(b, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (b, h, w, c)
        return out.permute(0, 3, 1, 2).contiguous(), y
