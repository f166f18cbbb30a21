"""The shared backbones a layer method is dropped into.

- 2D: a residual net laid out like FlexNet-N (Romero et al., FlexConv): stem conv -> BN -> ReLU;
  blocks conv -> BN -> ReLU -> Dropout -> conv -> BN, + shortcut (1x1 conv when the width
  changes), ReLU; global average pool -> Linear. No pooling or striding anywhere.
- 1D: a TCN-style net laid out like FlexTCN-N / CKCNN: no stem; blocks conv -> norm -> ReLU
  -> Dropout, twice, + shortcut, ReLU; Linear on the last step (causal tasks) or on the mean.

`dropout_in` (default 0) drops input elements in training before the first layer, as the CKConv and
FlexConv repositories' `dropout_in` (the CKCNN's 0.1 on sMNIST and pMNIST).

A layer that normalises its own output (attribute `normalises_output = True`, e.g. SMPConv's
two branches, each with its own BatchNorm) gets no norm after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bench.base import UserError
from methods.dropout import Dropout
from methods.task import TaskSpec

BACKBONE_HPARAMS = ("arch", "width", "depth", "dropout", "dropout_in")

# width factors per block, times `width` (the paper's net.no_hidden); see methods.md B.2-B.3
ARCHS: dict[str, dict[str, Any]] = {
    "flexnet3": dict(dim=2, width=24, factors=[1, 1.5, 2]),
    "flexnet5": dict(dim=2, width=22, factors=[1, 1.5, 1.5, 2, 2]),
    "flexnet7": dict(dim=2, width=24, factors=[1, 1, 1.5, 1.5, 1.5, 2, 2]),
    "flextcn2": dict(dim=1, width=30, factors=[1] * 2),
    "flextcn4": dict(dim=1, width=30, factors=[1] * 4),
    "flextcn6": dict(dim=1, width=30, factors=[1] * 6),
    "ckcnn": dict(dim=1, width=30, factors=[1] * 2, norm="layer"),
    # generic: `depth` blocks of constant width
    "resnet": dict(dim=2, width=32, factors=None),
    "tcn": dict(dim=1, width=32, factors=None),
}
DEFAULT_ARCH = {1: "flextcn2", 2: "flexnet3"}


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels at each position (input (B, C, ...)).

    The CKConv repo's LayerNorm is GroupNorm(1, C), which also normalises over time, so
    future steps change past outputs; per position the network stays causal.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, -1)).transpose(1, -1)


def batch_norm(dim: int, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if dim == 2 else nn.BatchNorm1d(channels)


def _norm(kind: str, dim: int, channels: int) -> nn.Module:
    if kind == "layer":  # CKCNN's LayerNorm, made causal (see ChannelLayerNorm)
        return ChannelLayerNorm(channels)
    return batch_norm(dim, channels)


def _layer_and_norm(make_layer: Callable, cin: int, cout: int, norm: str, dim: int) -> list[nn.Module]:
    layer = make_layer(cin, cout)
    return [layer] if getattr(layer, "normalises_output", False) else [layer, _norm(norm, dim, cout)]


def _pointwise(dim: int, cin: int, cout: int) -> nn.Module:
    return nn.Conv2d(cin, cout, 1) if dim == 2 else nn.Conv1d(cin, cout, 1)


class Block(nn.Module):
    """Two layers with norm, ReLU and dropout, plus a shortcut; `tcn_style` adds ReLU+Dropout after the second."""

    def __init__(self, make_layer: Callable, cin: int, cout: int, dim: int, norm: str, dropout: float, tcn_style: bool):
        super().__init__()
        drop = Dropout(dropout)
        second = _layer_and_norm(make_layer, cout, cout, norm, dim)
        if tcn_style:
            second += [nn.ReLU(), Dropout(dropout)]
        self.body = nn.Sequential(*_layer_and_norm(make_layer, cin, cout, norm, dim), nn.ReLU(), drop, *second)
        self.shortcut = _pointwise(dim, cin, cout) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class Backbone(nn.Module):
    def __init__(self, make_layer: Callable, task: TaskSpec, widths: list[int], norm: str, dropout: float,
                 dropout_in: float = 0.0):  # fmt: skip
        super().__init__()
        dim = task.dim
        self.task = task
        self.causal = task.causal
        layers: list[nn.Module] = [Dropout(dropout_in)] if dropout_in else []
        cin = task.in_channels
        if dim == 2:  # FlexNet stem
            layers += [*_layer_and_norm(make_layer, cin, widths[0], norm, dim), nn.ReLU()]
            cin = widths[0]
        for w in widths:
            layers.append(Block(make_layer, cin, w, dim, norm, dropout, tcn_style=dim == 1))
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, task.num_classes)
        if norm == "layer":  # CKCNN head init
            nn.init.normal_(self.head.weight, 0.0, 0.01)
        else:  # FlexNet head init
            nn.init.kaiming_normal_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        h = h[..., -1] if self.causal else h.flatten(2).mean(-1)
        return self.head(h)


def build_backbone(
    layer_factory: Callable,
    task: TaskSpec,
    layer_hparams: dict[str, Any],
    arch: str | None = None,  # the backbone (ARCHS); None: flexnet3 on images, flextcn2 on sequences
    width: int | None = None,  # channels of the first block (the others: times the arch's factors); None: the arch's
    depth: int | None = None,  # blocks, for the generic archs resnet and tcn; None: 2
    dropout: float = 0.2,  # dropout in each block
    dropout_in: float = 0.0,  # dropout on the input
) -> Backbone:
    arch = arch or DEFAULT_ARCH[task.dim]
    if arch not in ARCHS:
        raise UserError(f"unknown arch {arch!r}; known: {', '.join(ARCHS)}")
    spec = ARCHS[arch]
    if spec["dim"] != task.dim:
        raise UserError(f"arch {arch!r} is for {spec['dim']}D tasks, this task is {task.dim}D")
    if width is not None and width < 1 or depth is not None and depth < 1:
        raise UserError("width and depth must be positive")
    if not 0 <= dropout < 1 or not 0 <= dropout_in < 1:
        raise UserError(f"dropout and dropout_in must be in [0, 1), got {dropout}, {dropout_in}")
    base = width or spec["width"]
    factors = spec["factors"] or [1] * (depth or 2)
    if depth is not None and spec["factors"] is not None and depth != len(factors):
        raise UserError(f"arch {arch!r} has {len(factors)} blocks; use arch='resnet' or 'tcn' to set depth")
    widths = [int(base * f) for f in factors]

    def make_layer(cin: int, cout: int) -> nn.Module:
        return layer_factory(cin, cout, dim=task.dim, causal=task.causal, size=task.size, **layer_hparams)

    return Backbone(make_layer, task, widths, spec.get("norm", "batch"), dropout, dropout_in)
