"""CCNN, the Continuous CNN, and its separable FlexConv (`flexconv_sep`).

Knigge, Romero, Gu, Gavves, Bekkers, Tomczak, Hoogendoorn, Sonke: "Modelling Long Range
Dependencies in ND: From Task-Specific to a General Purpose CNN" (ICLR 2023; code
david-knigge/ccnn, MIT); methods.md A.8, B.4, C.3. Written from those notes and the paper.

`flexconv_sep` (layer): a depthwise FlexConv, one kernel per input channel from a MAGNet with
C_in outputs and a bias per channel, then a pointwise C_in -> C_out mixing (Kaiming-normal,
zero bias). Per layer MAGNet + (H + 1) C_in + dim + C_in C_out + C_out parameters instead of
FlexConv's MAGNet + (H + 1) C_in C_out + 2 dim + C_out. As in CCNN:
- the MAGNet is initialised as CCNN's (methods/kernelnets.py `ccnn_init_`): frequencies
  2 pi omega_0 gamma, omega_0 of order 10^3 (every CCNN run sets its own, 680-4230; default
  1000), envelopes near the present on causal sequences; then "Chang" initialisation, the
  output layer times sqrt(1 / taps of the kernel at init) (done here at construction, so a
  reloaded model is not rescaled again, the repo's bug until 2025);
- the mask's mean is fixed (+1 causal, 0 centred; `learn_mean=True` learns it), its width is
  learned at the full learning rate and with the protocol's weight decay: CCNN's mask
  learning-rate ratio never reaches its separable layers (methods.md E.2, 9).
The grid, mask, crop and FFT choice are FlexConv's (methods/flexconv.py).

`ccnn` (model): stem flexconv_sep(C_in -> h) -> BN -> GELU; `blocks` S4-style residual blocks
x + GELU(Linear(Dropout(GELU(flexconv_sep(BN(x)))))) (pre-norm); BN, the mean over positions
(sequences, causal ones too, as CCNN) or pixels, Linear. CCNN-4,140 is 4 blocks of 140 channels
with a 32-unit MAGNet (the defaults), CCNN-6,380 6 blocks of 380 with 64 units: on sMNIST
198,769 and 1,993,091 parameters, on CIFAR-10 201,042 and 1,999,366 ("200K" and "2M").
Dropout is channel dropout (Dropout1d on sequences: CCNN's Dropout2d, which on a 3D tensor
drops whole samples in recent PyTorch).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.base import UserError
from methods import register_method
from methods.backbones import batch_norm
from methods.dropout import Dropout
from methods.flexconv import FlexConv
from methods.kernelnets import ccnn_init_
from methods.task import TaskSpec

OMEGA_0 = 1000.0
CARD = dict(
    paper="Knigge, Romero, Gu, Gavves, Bekkers, Tomczak, Hoogendoorn, Sonke: Modelling Long Range Dependencies in "
    "ND: From Task-Specific to a General Purpose CNN (ICLR)",
    year=2023,
    dims=(1, 2),
    causal=True,
    resolution_change=True,
    learned_size=True,
    kernel_size_unit="taps per dimension (cropped by the mask)",
)


class DepthwiseFlexConv(FlexConv):
    """FlexConv with one kernel per channel: a CCNN MAGNet with `channels` outputs, one bias per channel."""

    def __init__(
        self, channels: int, *, dim: int, causal: bool, size, kernel_size: int | None = None,
        omega_0: float = OMEGA_0,  # the MAGNet's frequency scale (CCNN's initialisation); every CCNN run sets its own
        mask_init: float = 0.075, mask_threshold: float = 0.1,
        mask_lr_factor: float = 1.0,  # the mask width's lr, times the base lr (CCNN's ratio never reaches it)
        learn_mean: bool = False,  # learn the mask's mean too (CCNN keeps it fixed)
        kernel_hidden: int = 32, kernel_layers: int = 3, kernel_wd: float = 0.0,
    ):  # fmt: skip
        if omega_0 <= 0:
            raise UserError(f"omega_0 must be > 0, got {omega_0}")
        # a (channels, 1, ...) kernel: conv_with_kernel convolves each channel with its own
        super().__init__(
            1, channels, dim=dim, causal=causal, size=size, kernel_size=kernel_size, mask_init=mask_init,
            mask_threshold=mask_threshold, mask_lr_factor=mask_lr_factor, kernel_hidden=kernel_hidden,
            kernel_layers=kernel_layers, kernel_wd=kernel_wd,
        )  # fmt: skip
        if not learn_mean:
            mean = self.mask_mean.detach().clone()
            del self.mask_mean
            self.register_buffer("mask_mean", mean)
        ccnn_init_(self.net, omega_0, init_spatial=1.667 * mask_init, causal=causal)
        taps = math.prod(stop - start for start, stop in self.crop())
        with torch.no_grad():
            self.net.W_out.mul_(math.sqrt(1.0 / taps))

    size_weight_decay = True  # the protocol's weight decay reaches the mask, as CCNN's does

    def extra_repr(self) -> str:
        return f"depthwise {self.cout}, grid={self.grid}, causal={self.causal}"


@register_method(
    "flexconv_sep",
    description="CCNN's separable FlexConv: depthwise FlexConv (a MAGNet with C_in outputs) then pointwise mixing",
    **CARD,
)
class SeparableFlexConv(nn.Module):
    passes_kwargs_to = DepthwiseFlexConv  # where hparams_of finds the hparams **hp stands for

    def __init__(self, cin: int, cout: int, *, dim: int, causal: bool, size, **hp):
        super().__init__()
        self.depthwise = DepthwiseFlexConv(cin, dim=dim, causal=causal, size=size, **hp)
        self.pointwise = (nn.Conv2d if dim == 2 else nn.Conv1d)(cin, cout, 1)
        nn.init.kaiming_normal_(self.pointwise.weight)
        nn.init.zeros_(self.pointwise.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _linear(dim: int, cin: int, cout: int) -> nn.Module:
    lin = (nn.Conv2d if dim == 2 else nn.Conv1d)(cin, cout, 1)
    nn.init.kaiming_normal_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


class CCNNBlock(nn.Module):
    """Pre-norm S4-style block: x + GELU(Linear(Dropout(GELU(conv(BN(x))))))."""

    def __init__(self, conv: nn.Module, width: int, dim: int, dropout: float):
        super().__init__()
        drop = nn.Dropout2d(dropout) if dim == 2 else nn.Dropout1d(dropout)
        self.body = nn.Sequential(batch_norm(dim, width), conv, nn.GELU(), drop, _linear(dim, width, width), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register_method(
    "ccnn",
    kind="model",
    description="CCNN: separable FlexConvs in pre-norm S4-style residual blocks, mean readout (CCNN-4,140 default)",
    references=("CCNN-4,140",),
    **CARD,
)
class CCNN(nn.Module):
    passes_kwargs_to = SeparableFlexConv  # **layer_hp: the hparams of every flexconv_sep layer

    def __init__(
        self, task: TaskSpec,
        blocks: int = 4,  # residual blocks
        width: int = 140,  # channels
        dropout: float = 0.0,  # channel dropout in each block
        dropout_in: float = 0.0,  # dropout on the input
        **layer_hp,
    ):  # fmt: skip
        super().__init__()
        if blocks < 1 or width < 1 or not 0 <= dropout < 1 or not 0 <= dropout_in < 1:
            raise UserError(
                f"ccnn needs blocks, width >= 1 and dropouts in [0, 1); got {blocks}, {width}, {dropout}, {dropout_in}"
            )
        dim = task.dim

        def conv(cin: int, cout: int) -> SeparableFlexConv:
            return SeparableFlexConv(cin, cout, dim=dim, causal=task.causal, size=task.size, **layer_hp)

        self.dropout_in = Dropout(dropout_in)
        self.stem = nn.Sequential(conv(task.in_channels, width), batch_norm(dim, width), nn.GELU())
        self.blocks = nn.Sequential(*(CCNNBlock(conv(width, width), width, dim, dropout) for _ in range(blocks)))
        self.out_norm = batch_norm(dim, width)
        self.head = nn.Linear(width, task.num_classes)
        nn.init.kaiming_normal_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.out_norm(self.blocks(self.stem(self.dropout_in(x))))
        return self.head(h.flatten(2).mean(-1))
