"""DAU: displaced aggregation units (Tabernik, Kristan, Leonardis: CVPR 2018; IJCV 2020).

Written from the papers' formulas and the options of the authors' C++/CUDA layer (TF1 and Caffe
plugins; experiments.md section 5): there is no PyTorch code from the authors, and none was
copied. Each filter (output o, input c) is a sum of a few Gaussian blobs at learned positions:

    F_oc(p) = sum_k w_ock G(p - mu_ock; sigma),

G an isotropic Gaussian normalised to sum 1 on the integer grid (the authors' `unit_normalization`),
w and mu learned per (output, input, unit); sigma one per layer, fixed (default 0.5, the TF
plugin's) or learned with `learn_sigma=True`. The receptive field grows as the units move apart.

As the authors' layer computes it: blur the input once with G, shift the blurred map by each mu
with bilinear interpolation, accumulate w times the shifted maps. Bilinear interpolation by a
sub-pixel mu is a convolution with the tent t(x) = max(0, 1 - |x|) per axis, so each unit is the
separable kernel u_ock(p) = prod_d sum_q g(q) t(p_d - q - mu_ockd) (g the 1D Gaussian, q its taps),
and this layer builds the dense kernel sum_k w_ock u_ock on a grid of side K + 2h (K =
`max_kernel_size`, h = ceil(3 sigma) the blur's half-width) and runs one convolution: the same
output with one op (tests/test_dau.py checks it against blur + bilinear shifts). Gradients reach
mu through the tents, as through the authors' bilinear shifts.

Init (authors' defaults): units on a grid (2 x 2 in 2D, 4 in 1D: `units`), centred in cells
evenly spaced over +-(floor(K/2) - 1); weights N(0, 0.1^2). After every optimiser step mu is
clipped to +-(floor(K/2) - 0.01) (`post_step`), as the authors clip it. mu is the size parameter:
its own optimizer group without weight decay (decay would pull the units together), at
`mu_lr_factor` times the learning rate (the authors scale mu's gradient by 500 under SGD; Adam
does not see a gradient's scale). No host reads in forward or backward.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.base import UserError
from methods import register_method
from methods.functional import conv_with_kernel


def tent(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(1.0 - x.abs())


@register_method(
    "dau",
    description="DAU: displaced aggregation units, each filter a few normalised Gaussian blobs (fixed sigma) with "
    "learned 2D displacements and weights; built as one dense kernel (blur + bilinear shift)",
    paper="Tabernik, Kristan, Leonardis: Spatially-Adaptive Filter Units for Compact and Efficient Deep Neural "
    "Networks (IJCV 2020; CVPR 2018)",
    year=2020,
    dims=(1, 2),
    causal=False,
    learned_size=True,
    kernel_size_unit="taps per dimension: span of the unit centres + the blurred unit's support 2*ceil(3*sigma)+1, "
    "mean over (out, in) pairs",
)
class DAUConv(nn.Module):
    def __init__(
        self, cin: int, cout: int, *, dim: int, causal: bool = False, size=None,
        units: int | None = None,  # units per filter; None: 2 x 2 in 2D (all the authors' examples), 4 in 1D
        max_kernel_size: int = 9,  # side K of the dense kernel (odd): the units' centres stay within it
        sigma: float = 0.5,  # the units' Gaussian sigma
        learn_sigma: bool = False,  # learn sigma (per filter) instead of keeping it fixed
        mu_lr_factor: float = 1.0,  # learning rate of the displacements, times the base lr
    ):  # fmt: skip
        super().__init__()
        units = 4 if units is None else units
        if units < 1 or max_kernel_size < 3 or max_kernel_size % 2 == 0 or sigma <= 0:
            raise UserError(
                f"dau needs units >= 1, an odd max_kernel_size >= 3 and sigma > 0; got {units}, {max_kernel_size}, {sigma}"
            )
        per_axis = round(units ** (1.0 / dim))
        if per_axis**dim != units:
            raise UserError(
                f"dau places its units on a grid: units must be a {('', 'number', 'square')[dim]}, got {units}"
            )
        self.dim, self.units, self.K = dim, units, int(max_kernel_size)
        self.mu_bound = self.K // 2 - 0.01
        # the blur's half-width is fixed when the layer is built (no host read): 3 sigma of the initial sigma
        self.h = max(1, math.ceil(3 * sigma))
        self.learn_sigma = bool(learn_sigma)
        log_sigma = torch.tensor(math.log(sigma))
        if self.learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)
        span = self.K // 2 - 1
        centres = [(-span + (2 * i + 1) * span / per_axis) for i in range(per_axis)] if span > 0 else [0.0] * per_axis
        grid = torch.stack(torch.meshgrid(*([torch.tensor(centres)] * dim), indexing="ij"), -1).reshape(units, dim)
        self.mu = nn.Parameter(grid.expand(cout, cin, units, dim).clone())
        self.weight = nn.Parameter(torch.randn(cout, cin, units) * 0.1)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.size_lr_factor = float(mu_lr_factor)
        side = self.K + 2 * self.h
        self.register_buffer("taps", torch.arange(-(side // 2), side // 2 + 1, dtype=torch.float32), persistent=False)
        self.register_buffer("blur_taps", torch.arange(-self.h, self.h + 1, dtype=torch.float32), persistent=False)

    def gaussian(self) -> torch.Tensor:
        """The 1D Gaussian g(q), q = -h..h, normalised to sum 1 (G = g x g is then normalised too)."""
        g = torch.exp(-self.blur_taps.square() / (2 * torch.exp(2 * self.log_sigma)))
        return g / g.sum()

    def unit_profiles(self) -> torch.Tensor:
        """u_ockd(p) = sum_q g(q) t(p - q - mu_ockd): the blurred, shifted unit along each axis, (O, C, k, dim, side)."""
        g = self.gaussian()
        shift = self.taps[:, None] - self.blur_taps[None, :]  # p - q, (side, 2h + 1)
        return torch.einsum("q,ockdpq->ockdp", g, tent(shift - self.mu[..., None, None]))

    def dense_kernel(self) -> torch.Tensor:
        """sum_k w_ock u_ock on the (K + 2h)^dim grid, shape (C_out, C_in, side, ...)."""
        u = self.unit_profiles()
        if self.dim == 1:
            return torch.einsum("ock,ockp->ocp", self.weight, u[:, :, :, 0])
        return torch.einsum("ock,ocky,ockx->ocyx", self.weight, u[:, :, :, 0], u[:, :, :, 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_with_kernel(x, self.dense_kernel().to(x.dtype), self.bias, causal=False)

    # -- hooks (methods/hooks.py) ------------------------------------------------------
    def size_parameters(self) -> list[nn.Parameter]:
        return [self.mu, self.log_sigma] if self.learn_sigma else [self.mu]

    def post_step(self) -> None:
        with torch.no_grad():
            self.mu.clamp_(-self.mu_bound, self.mu_bound)

    def kernel_sizes(self) -> float | list[float]:
        """Per axis: the span of the unit centres plus a unit's own support 2h + 1, mean over (out, in) pairs."""
        mu = self.mu.detach()
        span = (mu.amax(2) - mu.amin(2)).flatten(0, 1).mean(0)  # (dim,)
        sides = [float(span[d]) + 2 * self.h + 1 for d in range(self.dim)]
        return sides[0] if self.dim == 1 else sides

    def extra_repr(self) -> str:
        return f"{self.mu.shape[1]}, {self.mu.shape[0]}, units={self.units}, K={self.K}, blur half-width={self.h}"
