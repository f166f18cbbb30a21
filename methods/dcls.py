"""DCLS (Khalfaoui-Hassani, Pellegrini, Masquelier, ICLR 2023): dilated convolution with learnable spacings.

Each of the m kernel elements of every (output, input) channel pair has a weight w_i, a
learned real-valued position p_i and a learned width sig_i per spatial dimension. They are
spread onto a dense grid of side S (the largest kernel the layer may become) by a Gaussian,
the "gauss" version of the ICML 2023 workshop paper:

    K[u] = sum_i w_i * phi_i(u) / sum_u' phi_i(u'),   phi_i(u) = prod_d exp(-((u_d - p_id) / (|sig_id| + 0.27))^2 / 2)

and the dense kernel goes through an ordinary convolution. Positions are clamped back to
the grid after every optimiser step (`post_step`). Defaults: m = 3^dim elements (a 3-tap
conv's weights per channel pair) in a grid of side S = 7. Written from these formulas
(methods.md, Part 2, section 4), not from the `dcls` package.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from methods import register_method
from methods.functional import conv_with_kernel

SIG_FLOOR = 0.27  # the paper's minimum Gaussian width: sig = 0.23 at init gives an effective 0.5
SIG_INIT = 0.23
POSITION_INIT_STD = 0.5


@register_method(
    "dcls",
    description="DCLS: kernel elements at learned real positions (Gaussian interpolation, learned width) in an S x S grid",
    paper="Khalfaoui-Hassani, Pellegrini, Masquelier: Dilated Convolution with Learnable Spacings (ICLR)",
    year=2023,
    dims=(1, 2),
    causal=True,
    learned_size=True,
    kernel_size_unit="taps: per dimension, mean over channel pairs of (max - min of the element positions) + 1",
)
class DclsConv(nn.Module):
    def __init__(
        self, cin: int, cout: int, *, dim: int, causal: bool, size=None,
        kernel_count: int | None = None,  # kernel elements m per channel pair; None: 3^dim, a 3-tap conv's weights
        dilated_size: int = 7,  # side S of the grid the elements move on (odd when centred): the largest kernel
        position_lr_factor: float = 1.0,  # learning rate of the positions and widths, times the base lr
    ):  # fmt: skip
        super().__init__()
        m = 3**dim if kernel_count is None else kernel_count
        if m < 1 or dilated_size < 1 or (not causal and dilated_size % 2 == 0):
            raise ValueError(f"dcls needs kernel_count >= 1 and an odd dilated_size >= 1; got {m}, {dilated_size}")
        self.dim, self.causal = dim, causal
        self.size_lr_factor = position_lr_factor  # positions and widths: no weight decay, as in the paper
        # grid coordinates relative to the output position: centred -S//2..S//2, causal -(S-1)..0
        self.low, self.high = (-(dilated_size - 1), 0) if causal else (-(dilated_size // 2), dilated_size // 2)
        fan_in = cin * m  # nn.Conv's default init with the m elements as its taps
        bound = 1 / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.empty(cout, cin, m).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(cout).uniform_(-bound, bound))
        # the reference's init: p ~ N(0, 0.5^2) around the centre; causally, the same spread on
        # the past side of the present step (half-normal)
        positions = POSITION_INIT_STD * torch.randn(dim, cout, cin, m)
        self.positions = nn.Parameter(-positions.abs() if causal else positions)
        self.sig = nn.Parameter(torch.full((dim, cout, cin, m), SIG_INIT))
        self.post_step()

    def weight_dense(self) -> torch.Tensor:
        """The dense kernel, (cout, cin, S) or (cout, cin, S, S)."""
        grid = torch.arange(self.low, self.high + 1, dtype=self.positions.dtype, device=self.positions.device)
        delta = (grid - self.positions.unsqueeze(-1)) / (self.sig.abs() + SIG_FLOOR).unsqueeze(-1)
        phi = torch.exp(-0.5 * delta**2)  # (dim, cout, cin, m, S)
        # a product of Gaussians sums to the product of the per-axis sums, so normalise per axis
        phi = phi / (phi.sum(-1, keepdim=True) + 1e-7)
        if self.dim == 1:
            return torch.einsum("oci,ociu->ocu", self.weight, phi[0])
        return torch.einsum("oci,ociy,ocix->ocyx", self.weight, phi[0], phi[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_with_kernel(x, self.weight_dense(), self.bias, causal=self.causal)

    def post_step(self) -> None:
        with torch.no_grad():
            self.positions.clamp_(self.low, self.high)

    def size_parameters(self) -> list[nn.Parameter]:
        return [self.positions, self.sig]

    def kernel_sizes(self) -> float | list[float]:
        """Per dimension: mean over channel pairs of the span of the m positions, plus one tap."""
        p = self.positions.detach()
        span = (p.amax(-1) - p.amin(-1) + 1).mean(dim=(1, 2))
        return float(span[0]) if self.dim == 1 else span.tolist()
