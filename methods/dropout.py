"""Dropout with a cheaper random mask on the CPU.

torch's CPU dropout draws one Bernoulli sample per element, about 9 ns each: on the small models
of the CPU suites that is more than the convolutions cost (0.38 ms of a 7 ms training step, per
dropout layer). Here one 64-bit random word gives four 16-bit lanes, each compared with
round(p * 2^16): the same inverted dropout (zero with probability p, scale the rest by 1/(1 - p)),
p rounded to a multiple of 2^-16, at about a quarter of the random draws. Seeded by torch's
global generator, as nn.Dropout. On CUDA (whose generator is fast) it is nn.Dropout.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LANES = 2**16


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """Booleans of `shape`, each True with probability 1 - round(p * 2^16) / 2^16."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    lanes = words.view(torch.int16)  # four uniform int16 lanes per word
    if n % 4:
        lanes = lanes[:n]
    lanes = lanes.view(shape)
    return lanes >= -(LANES // 2) + round(p * LANES)


def compiling() -> bool:
    """Whether torch.compile is tracing this call (torch >= 2.3 says so; older ones never compile here)."""
    check = getattr(torch.compiler, "is_compiling", None)
    return bool(check and check())


class Dropout(nn.Dropout):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.inplace or compiling():
            return super().forward(x)  # (torch.compile cannot trace random_: the plain dropout there)
        dropped = round(self.p * LANES) / LANES
        if dropped >= 1:
            return x * 0
        return x * (keep_mask(x.shape, self.p).to(x.dtype) * (1.0 / (1.0 - dropped)))
