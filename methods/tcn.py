"""The TCN of Bai, Kolter, Koltun (2018): causal dilated convolutions with weight norm.

Level i is a residual block of two [weight-normed causal conv (kernel k, dilation 2^i) ->
ReLU -> dropout] layers, plus a 1 x 1 conv shortcut where the width changes, then ReLU; the
head reads the last step. Defaults are the paper's sequential-MNIST ones (25 channels,
kernel 7, dropout 0.05); the number of levels defaults to the fewest whose receptive field
1 + 2 (k - 1) (2^L - 1) covers the sequence (the paper used 8 on length 784, one more than
that, and the paper suites set 8 there: 66,910 parameters, as the official TCN). The model is causal throughout; on a non-causal task it reads the last step all the
same, which then sees the whole sequence.

Init as the reference code actually runs: it draws the weight-normed convs' weights from
N(0, 0.01^2), but weight norm recomputes `weight` from its own (g, v) before every forward,
so that draw never takes effect and those convs keep PyTorch's default init; the 1 x 1
shortcut convs do get N(0, 0.01^2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from methods import register_method
from methods.dropout import Dropout
from methods.task import TaskSpec


def receptive_field(levels: int, kernel_size: int) -> int:
    return 1 + 2 * (kernel_size - 1) * (2**levels - 1)


def levels_to_cover(length: int, kernel_size: int) -> int:
    levels = 1
    while receptive_field(levels, kernel_size) < length:
        levels += 1
    return levels


class TemporalBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.pad = (kernel_size - 1) * dilation  # on the left only: output t sees t - pad .. t
        self.conv1 = weight_norm(nn.Conv1d(cin, cout, kernel_size, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(cout, cout, kernel_size, dilation=dilation))
        self.dropout = Dropout(dropout)
        self.shortcut = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()
        if cin != cout:
            nn.init.normal_(self.shortcut.weight, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.relu(self.conv1(F.pad(x, (self.pad, 0)))))
        h = self.dropout(torch.relu(self.conv2(F.pad(h, (self.pad, 0)))))
        return torch.relu(h + self.shortcut(x))


@register_method(
    "tcn",
    kind="model",
    description="TCN: weight-normed causal dilated convs (dilation 2^i, kernel 7), levels enough to cover the sequence",
    paper="Bai, Kolter, Koltun: An Empirical Evaluation of Generic Convolutional and Recurrent Networks for Sequence Modeling (arXiv)",
    year=2018,
    dims=(1,),
    causal=True,
    noncausal=True,
    kernel_size_unit="fixed 7 taps, dilated",
)
class TCN(nn.Module):
    def __init__(
        self, task: TaskSpec,
        width: int = 25,  # channels of every level
        levels: int | None = None,  # residual levels, dilation 2^i; None: enough to cover the sequence
        kernel_size: int = 7,  # taps of each dilated conv
        dropout: float = 0.05,  # dropout after each conv
    ):  # fmt: skip
        super().__init__()
        levels = levels_to_cover(task.size, kernel_size) if levels is None else levels
        if width < 1 or levels < 1 or kernel_size < 2 or not 0 <= dropout < 1:
            raise ValueError(
                f"tcn needs width, levels >= 1, kernel_size >= 2 and dropout in [0, 1); got {width}, {levels}, {kernel_size}, {dropout}"
            )
        blocks, cin = [], task.in_channels
        for i in range(levels):
            blocks.append(TemporalBlock(cin, width, kernel_size, 2**i, dropout))
            cin = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(width, task.num_classes)
        self.receptive_field = receptive_field(levels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[..., -1])
