"""DCN-sigma^ji (Tomen, Pintea, van Gemert, ICML 2021): Gaussian N-jet filters with one scale per channel pair.

The Deep Continuous Networks' "DCN-sigma^ji" layer: order-2 scale-normalised Gaussian
derivatives (6 basis filters in 2D, 3 in 1D) with a learned sigma = 2^s for every
(output, input) channel pair, inside a fixed support (7 x 7, or 7 taps). sigma changes the
soft size of each filter inside that window, never the window itself. This is the layer
only; the paper's neural-ODE block around it is not part of this method.

Written from the formulas in shared/reference/methods.md, Part 2, section 2.
"""

from __future__ import annotations

import torch
from torch import nn

from methods import kernelbank, register_method
from methods.functional import conv_with_kernel
from methods.njet import _constant, gaussian_derivatives, jet_orders


@register_method(
    "dcn_sigma",
    description="DCN-sigma^ji layer: order-2 Gaussian N-jet, one learned sigma per channel pair in a fixed 7x7 window"
    " (the layer, not the neural-ODE model)",
    paper="Tomen, Pintea, van Gemert: Deep Continuous Networks (ICML)",
    year=2021,
    dims=(1, 2),
    causal=True,
    learned_size=True,
    kernel_size_unit="taps: mean over channel pairs of min(4*sigma+1, support), the +-2 sigma width inside the fixed window",
)
class DCNSigmaConv(nn.Module):
    def __init__(
        self, cin: int, cout: int, *, dim: int, causal: bool, size=None,
        order: int = 2,  # highest derivative order of the basis
        support: int = 7,  # side of the fixed window the kernel is sampled on (odd)
        sigma_lr_factor: float = 1.0,  # learning rate of sigma, times the base lr
    ):  # fmt: skip
        super().__init__()
        if support < 1 or support % 2 == 0 or order < 0:
            raise ValueError(f"dcn_sigma needs an odd support >= 1 and order >= 0; got {support}, {order}")
        self.dim, self.causal, self.order, self.support = dim, causal, order, support
        self.size_lr_factor = sigma_lr_factor  # the reference trains sigma at the base lr, with no weight decay
        self.orders = jet_orders(order, dim)
        # the reference's inits: alpha ~ N(0, 0.1^2), s ~ N(0, (2/3)^2)
        self.alpha = nn.Parameter(0.1 * torch.randn(cout, cin, len(self.orders)))
        self.log2_sigma = nn.Parameter(2 / 3 * torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))

    def sigma(self) -> torch.Tensor:
        return torch.exp2(self.log2_sigma)

    def weight(self) -> torch.Tensor:
        d = gaussian_derivatives(self.sigma(), self.support // 2, self.order)  # (cout, cin, N + 1, K)
        if self.dim == 1:
            return torch.einsum("ocf,ocfx->ocx", self.alpha, d)
        rows = d[:, :, [i for i, _ in self.orders]]
        cols = d[:, :, [j for _, j in self.orders]]
        return torch.einsum("ocf,ocfy,ocfx->ocyx", self.alpha, rows, cols)

    def sample_kernel(self) -> torch.Tensor:
        return self.weight()

    def batch_key(self):
        """Layers with equal keys sample their kernels in one batched call (methods/kernelbank.py)."""
        return (self.dim, self.order, self.support, self.alpha.device, self.alpha.dtype)

    @staticmethod
    def sample_together(layers: list[DCNSigmaConv]) -> list[torch.Tensor]:
        """`weight()` of every layer (equal batch keys), from one evaluation over all their channel pairs."""
        first = layers[0]
        F = len(first.orders)
        sigma = torch.exp2(kernelbank.cat([layer.log2_sigma.reshape(-1) for layer in layers]))  # (P,) channel pairs
        alpha = kernelbank.cat([layer.alpha.reshape(-1, F) for layer in layers])  # (P, F)
        d = gaussian_derivatives(sigma, first.support // 2, first.order)  # (P, N + 1, K)
        if first.dim == 1:
            w = torch.einsum("pf,pfx->px", alpha, d)
        else:
            # index tensors kept on the device (no host-to-device copy in the step)
            rows = d.index_select(1, _constant(("rows", first.order), d.device,
                                               lambda: torch.tensor([i for i, _ in first.orders])))  # fmt: skip
            cols = d.index_select(1, _constant(("cols", first.order), d.device,
                                               lambda: torch.tensor([j for _, j in first.orders])))  # fmt: skip
            w = torch.einsum("pf,pfy,pfx->pyx", alpha, rows, cols)
        parts = w.split([layer.log2_sigma.numel() for layer in layers])
        return [part.view(*layer.log2_sigma.shape, *part.shape[1:]) for part, layer in zip(parts, layers)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # causal: the same kernel applied causally, i.e. centred support // 2 steps in the past; in the
        # network's forward the kernel comes from one batched call for all its DCN-sigma layers
        return conv_with_kernel(x, kernelbank.kernel_of(self), self.bias, causal=self.causal)

    def size_parameters(self) -> list[nn.Parameter]:
        return [self.log2_sigma]

    def kernel_sizes(self) -> float:
        """Mean over channel pairs of each filter's +-2 sigma width, 4 sigma + 1 taps, clipped to the window."""
        return float((4 * self.sigma().detach() + 1).clamp(max=self.support).mean())
