"""Fixed-size convolution baselines: `conv` (k x k, default 3) and `conv33` (33 x 33 / full length)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods import register_method
from methods.functional import conv_with_kernel


class Conv(nn.Module):
    """A plain convolution with a fixed kernel: centred 'same' padding, or causal left padding."""

    def __init__(self, cin: int, cout: int, kernel_size: int, dim: int, causal: bool, dilation: int = 1):
        super().__init__()
        if kernel_size < 1 or dilation < 1:
            raise ValueError(f"kernel_size and dilation must be >= 1, got {kernel_size}, {dilation}")
        if not causal and kernel_size % 2 == 0:
            raise ValueError(f"a centred convolution needs an odd kernel_size, got {kernel_size}")
        conv = nn.Conv2d if dim == 2 else nn.Conv1d
        self.causal = causal
        self.span = dilation * (kernel_size - 1)  # receptive field minus one
        self.conv = conv(cin, cout, kernel_size, dilation=dilation, padding=0 if causal else self.span // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv.dilation[0] == 1:  # the shared path picks FFT for long kernels (conv33 on sequences)
            return conv_with_kernel(x, self.conv.weight, self.conv.bias, causal=self.causal)
        if self.causal:  # output t sees inputs t - span .. t only
            x = F.pad(x, (self.span, 0))
        return self.conv(x)

    def kernel_sizes(self) -> float:
        return float(self.span + 1)


@register_method("conv", description="fixed k x k convolution (k=3 default)", paper="baseline")
def conv(
    cin, cout, *, dim, causal, size,
    kernel_size: int = 3,  # taps per side
):  # fmt: skip
    return Conv(cin, cout, kernel_size, dim, causal)


@register_method(
    "conv33",
    description="fixed kernel as large as FlexConv's horizon: 33 x 33 on 32-px images (H+1), full length on sequences",
    paper="FlexConv (Romero et al., 2022) baseline",
    year=2022,
)
def conv33(cin, cout, *, dim, causal, size):
    # the paper's "k=33" row on 32-px CIFAR is FlexConv's horizon H+1; generalised to any size as such
    length = size if dim == 1 else max(size) + 1 - max(size) % 2
    if dim == 1 and not causal and length % 2 == 0:
        length += 1  # a centred kernel must be odd; one past the length still covers it all
    return Conv(cin, cout, length, dim, causal)
