"""N-Jet (Pintea et al., TIP 2021): a Gaussian-derivative basis with one learned scale per layer.

The kernel is W[o, c] = sum_f alpha[o, c, f] * B_f, where the B_f are scale-normalised
Gaussian derivatives up to order N (outer products with i + j <= N in 2D) at the layer's
scale sigma = 2^s. The support follows sigma (half-width ceil(k * sigma + 0.5)), so the
kernel really grows and shrinks; the integer size is recomputed every forward from the
detached sigma, and gradients reach s through the sampled values.

Written from the formulas in shared/reference/methods.md, Part 2, section 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from methods import register_method
from methods.functional import conv_with_kernel


def hermite(order: int, x: torch.Tensor) -> torch.Tensor:
    """Physicists' Hermite polynomials H_0..H_order at x, stacked on a new first axis."""
    polys = [torch.ones_like(x), 2 * x]
    for n in range(1, order):
        polys.append(2 * x * polys[n] - 2 * n * polys[n - 1])
    return torch.stack(polys[: order + 1])


def gaussian_derivatives(sigma: torch.Tensor, half_width: int, order: int) -> torch.Tensor:
    """sigma^n d^n G / dx^n for n = 0..order on the grid -h..h, shape (*sigma.shape, order + 1, 2h + 1).

    G is the Gaussian sampled on the grid and renormalised to sum to 1 there; its n-th
    derivative is (-1 / (sqrt(2) sigma))^n H_n(x / (sqrt(2) sigma)) G(x), so the scale
    normalisation sigma^n leaves (-1 / sqrt(2))^n H_n(x / (sqrt(2) sigma)) G(x).
    """
    x = torch.arange(-half_width, half_width + 1, dtype=sigma.dtype, device=sigma.device)
    s = sigma.unsqueeze(-1)
    g = torch.exp(-(x**2) / (2 * s**2))
    g = g / g.sum(-1, keepdim=True)
    h = hermite(order, x / (math.sqrt(2) * s))  # (order + 1, *sigma.shape, K)
    signs = torch.tensor([(-1 / math.sqrt(2)) ** n for n in range(order + 1)], dtype=sigma.dtype, device=sigma.device)
    basis = signs.view(-1, *([1] * (h.dim() - 1))) * h * g
    return basis.movedim(0, -2)


def jet_orders(order: int, dim: int) -> list[tuple[int, ...]]:
    """The derivative orders of the basis: n = 0..N in 1D, (i, j) with i + j <= N in 2D."""
    if dim == 1:
        return [(n,) for n in range(order + 1)]
    return [(i, total - i) for total in range(order + 1) for i in range(total, -1, -1)]


def support_half_width(sigma: float, k: float) -> int:
    return math.ceil(k * sigma + 0.5)


class NJetConv(nn.Module):
    """One N-Jet layer: a learned combination of Gaussian derivatives at one learned scale."""

    variable_shape = True  # its support follows sigma (bench/cost/fastpath.py: not compiled by default)

    def __init__(
        self,
        cin: int,
        cout: int,
        dim: int,
        causal: bool,
        order: int = 4,
        k: float = 2.0,
        init_sigma: float = 1.0,
        sigma_lr_factor: float = 0.1,
        sigma_reg: float = 0.0,
    ):
        super().__init__()
        if order < 0 or k <= 0 or init_sigma <= 0:
            raise ValueError(f"N-Jet needs order >= 0, k > 0 and init_sigma > 0; got {order}, {k}, {init_sigma}")
        self.dim, self.causal, self.order, self.k = dim, causal, order, k
        # sigma's gradient is large next to alpha's (methods.md 1, pitfall 2), and weight decay
        # would pull it towards sigma = 1; FlexConv treats its mask parameters the same way
        self.size_lr_factor, self.sigma_reg = sigma_lr_factor, sigma_reg
        self.orders = jet_orders(order, dim)
        self.log2_sigma = nn.Parameter(torch.tensor(math.log2(init_sigma)))
        self.alpha = nn.Parameter(torch.empty(cout, cin, len(self.orders)))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.resolution_ratio = 1.0  # set by change_resolution; multiplies sigma
        self._input_size: tuple[int, ...] | None = None  # last input's spatial size, for the cap
        # The reference draws alpha ~ N(0, 1). We scale it so that the sampled kernel's expected
        # energy per (out, in) pair equals that of nn.Conv's default init, 1 / (3 cin): the layer
        # then starts at a conv's output scale and Adam's steps are the same size relative to it.
        with torch.no_grad():
            energy = self.basis([support_half_width(init_sigma, k)] * dim).square().sum()
            nn.init.normal_(self.alpha, 0.0, math.sqrt(1.0 / (3 * cin * energy.item())))

    def sigma(self) -> torch.Tensor:
        return torch.exp2(self.log2_sigma) * self.resolution_ratio

    def half_widths(self, input_size: tuple[int, ...] | None) -> list[int]:
        h = support_half_width(self.sigma().item(), self.k)
        # a half-width of n - 1 already reaches every input from every output
        return [h if input_size is None else min(h, n - 1) for n in (input_size or [None] * self.dim)]

    def basis(self, half_widths: list[int]) -> torch.Tensor:
        """The basis filters B_f, shape (F, K) in 1D or (F, Kh, Kw) in 2D."""
        sigma = self.sigma()
        per_axis = [gaussian_derivatives(sigma, h, self.order) for h in half_widths]  # (N + 1, K_d) each
        if self.dim == 1:
            return per_axis[0]
        rows = per_axis[0][[i for i, _ in self.orders]]
        cols = per_axis[1][[j for _, j in self.orders]]
        return rows[:, :, None] * cols[:, None, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._input_size = tuple(x.shape[2:])
        basis = self.basis(self.half_widths(self._input_size))
        weight = torch.einsum("ocf,f...->oc...", self.alpha, basis)
        # causal: the same kernel applied causally, i.e. centred h steps in the past
        return conv_with_kernel(x, weight, self.bias, causal=self.causal)

    # -- hooks (methods/hooks.py) --------------------------------------------------------
    def size_parameters(self) -> list[nn.Parameter]:
        return [self.log2_sigma]

    def regularization_loss(self) -> torch.Tensor:
        # The reference adds weight_decay * (sigma + |alpha|) after `.item()`, so it has no
        # gradient: dead code. Here an optional penalty on sigma that does act (0 = off, as
        # the reference in effect); alpha is already under the optimizer's weight decay.
        return self.sigma_reg * self.sigma()

    def kernel_sizes(self) -> float | list[float]:
        sides = [float(2 * h + 1) for h in self.half_widths(self._input_size)]
        return sides[0] if self.dim == 1 else sides

    def change_resolution(self, ratio: float) -> None:
        """Run on inputs `ratio` times the training resolution: sigma (and the support) scale with it."""
        self.resolution_ratio = float(ratio)


@register_method(
    "njet",
    description="N-Jet: scale-normalised Gaussian derivatives up to order N, one learned scale per layer",
    paper="Pintea, Tomen, Goes, Loog, van Gemert: Resolution learning in deep CNNs using scale-space theory (IEEE TIP)",
    year=2021,
    dims=(1, 2),
    causal=True,
    resolution_change=True,
    learned_size=True,
    kernel_size_unit="taps: support side 2*ceil(k*sigma+0.5)+1 per dimension, capped at the input size",
)
def njet(
    cin,
    cout,
    *,
    dim,
    causal,
    size,
    order: int = 4,
    k: float = 2.0,
    init_sigma: float = 1.0,
    sigma_lr_factor: float = 0.1,
    sigma_reg: float = 0.0,
):
    return NJetConv(cin, cout, dim, causal, order, k, init_sigma, sigma_lr_factor, sigma_reg)
