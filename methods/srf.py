"""Structured receptive field in the manner of Shelhamer, Wang, Darrell (2019): a free-form filter composed with a learned Gaussian.

The layer computes f * (g_sigma * x): a depthwise Gaussian blur with one learned sigma = 2^s
per input channel (spherical, separable), then a small free-form conv (3 x 3, or 3 taps).
The Gaussian's support follows sigma, half-width ceil(2 sigma) (side 2 ceil(2 sigma) + 1),
recomputed every forward from the detached sigma as in N-Jet; gradients reach sigma through
the sampled values. The composed filter's size, Gaussian side + k - 1, is what the layer
learns. The paper's dynamic (per-pixel) variant and its dilation of the free-form filter
for large sigma are not part of this static layer.

Written from the description in shared/reference/methods.md, Part 2, section 3a.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from methods import register_method
from methods.functional import conv_with_kernel


class GaussianBlurConv(nn.Module):
    variable_shape = True  # its support follows sigma (bench/cost/fastpath.py: not compiled by default)

    def __init__(
        self,
        cin: int,
        cout: int,
        dim: int,
        causal: bool,
        kernel_size: int = 3,
        init_sigma: float = 1.0,
        sigma_lr_factor: float = 0.1,
    ):
        super().__init__()
        if init_sigma <= 0:
            raise ValueError(f"init_sigma must be > 0, got {init_sigma}")
        self.dim, self.causal, self.kernel_size = dim, causal, kernel_size
        # the scale parameters get the treatment of N-Jet's and FlexConv's mask: lower lr, no decay
        self.size_lr_factor = sigma_lr_factor
        self.log2_sigma = nn.Parameter(torch.full((cin,), math.log2(init_sigma)))
        # holds the free-form weights (nn.Conv's init); applied below, centred or causal
        self.free_form = (nn.Conv2d if dim == 2 else nn.Conv1d)(cin, cout, kernel_size)
        self._input_size: tuple[int, ...] | None = None

    def half_widths(self, length: int | None) -> torch.Tensor:
        """Each channel's Gaussian half-width ceil(2 sigma), capped at length - 1 (it then reaches everything)."""
        h = torch.ceil(2 * torch.exp2(self.log2_sigma.detach())).long()
        return h if length is None else h.clamp(max=length - 1)

    def gaussians(self, length: int) -> torch.Tensor:
        """Per-channel Gaussians on a common grid of the largest half-width, (cin, 2H + 1), each zero outside its own support."""
        half = self.half_widths(length)
        top = int(half.max())
        x = torch.arange(-top, top + 1, dtype=self.log2_sigma.dtype, device=self.log2_sigma.device)
        sigma = torch.exp2(self.log2_sigma).unsqueeze(1)
        g = torch.exp(-(x**2) / (2 * sigma**2)) * (x.abs() <= half.unsqueeze(1))
        return g / g.sum(1, keepdim=True)

    def blur(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        """Depthwise Gaussian blur along spatial `axis` (0 = first spatial dimension)."""
        g = self.gaussians(x.shape[2 + axis])
        cin, side = g.shape
        shape = [cin, 1] + [1] * self.dim
        shape[2 + axis] = side
        weight = g.view(shape).to(x.dtype)
        if self.causal:  # the blur centred side // 2 steps in the past
            return F.conv1d(F.pad(x, (side - 1, 0)), weight, groups=cin)
        padding = [0] * self.dim
        padding[axis] = side // 2
        conv = F.conv2d if self.dim == 2 else F.conv1d
        return conv(x, weight, padding=tuple(padding), groups=cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._input_size = tuple(x.shape[2:])
        for axis in range(self.dim):  # spherical sigma: a separable blur
            x = self.blur(x, axis)
        return conv_with_kernel(x, self.free_form.weight, self.free_form.bias, causal=self.causal)

    def size_parameters(self) -> list[nn.Parameter]:
        return [self.log2_sigma]

    def kernel_sizes(self) -> float | list[float]:
        """Per dimension: mean over input channels of the composed support, (2 h + 1) + (k - 1)."""
        sizes = self._input_size or (None,) * self.dim
        sides = [float((2 * self.half_widths(n) + self.kernel_size).float().mean()) for n in sizes]
        return sides[0] if self.dim == 1 else sides


@register_method(
    "srf_gauss",
    description="structured receptive field: learned per-channel Gaussian blur (support follows sigma) then a 3x3 conv",
    paper="Shelhamer, Wang, Darrell: Blurring the Line Between Structure and Learning to Optimize and Adapt Receptive Fields (arXiv)",
    year=2019,
    dims=(1, 2),
    causal=True,
    learned_size=True,
    kernel_size_unit="taps: per dimension, mean over input channels of the composed support 2*ceil(2*sigma)+1 + k-1",
)
def srf_gauss(
    cin, cout, *, dim, causal, size, kernel_size: int = 3, init_sigma: float = 1.0, sigma_lr_factor: float = 0.1
):
    return GaussianBlurConv(cin, cout, dim, causal, kernel_size, init_sigma, sigma_lr_factor)
