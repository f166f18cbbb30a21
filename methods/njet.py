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

from bench.base import UserError
from methods import hooks, kernelbank, register_method
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
    signs = _constant(("signs", order, sigma.dtype), sigma.device,
                      lambda: torch.tensor([(-1 / math.sqrt(2)) ** n for n in range(order + 1)], dtype=sigma.dtype))  # fmt: skip
    basis = signs.view(-1, *([1] * (h.dim() - 1))) * h * g
    return basis.movedim(0, -2)


def jet_orders(order: int, dim: int) -> list[tuple[int, ...]]:
    """The derivative orders of the basis: n = 0..N in 1D, (i, j) with i + j <= N in 2D."""
    if dim == 1:
        return [(n,) for n in range(order + 1)]
    return [(i, total - i) for total in range(order + 1) for i in range(total, -1, -1)]


_CONSTANTS: dict = {}


def _constant(key, device, make) -> torch.Tensor:
    """A small constant tensor built on the host once and kept on `device`: no copy in the step."""
    full = (key, device)
    if full not in _CONSTANTS:
        if len(_CONSTANTS) > 256:
            _CONSTANTS.clear()
        _CONSTANTS[full] = make().to(device)
    return _CONSTANTS[full]


def support_half_width(sigma: float, k: float) -> int:
    return math.ceil(k * sigma + 0.5)


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
class NJetConv(nn.Module):
    """One N-Jet layer: a learned combination of Gaussian derivatives at one learned scale."""

    variable_shape = True  # its support follows sigma (bench/run/fastpath.py: not compiled by default)
    learn_sigma = True  # False: the scale is a (saved) buffer, the basis fixed: RFNN (Jacobsen et al. 2016)
    scales = 1  # scales per layer, sigma * 2^i for i < scales (RFNN's several fixed scales; N-Jet has one)

    def __init__(
        self, cin: int, cout: int, *, dim: int, causal: bool, size=None,
        order: int = 4,  # highest derivative order N of the basis
        k: float = 2.0,  # the support's half-width is ceil(k sigma + 0.5)
        init_sigma: float = 1.0,  # the scale at init
        sigma_lr_factor: float = 0.1,  # learning rate of the scale, times the base lr
        sigma_reg: float = 0.0,  # weight of the penalty on the scale (0: off)
    ):  # fmt: skip
        super().__init__()
        if order < 0 or k <= 0 or init_sigma <= 0:
            raise ValueError(f"N-Jet needs order >= 0, k > 0 and init_sigma > 0; got {order}, {k}, {init_sigma}")
        self.dim, self.causal, self.order, self.k = dim, causal, order, k
        # sigma's gradient is large next to alpha's (methods.md 1, pitfall 2), and weight decay
        # would pull it towards sigma = 1; FlexConv treats its mask parameters the same way
        self.size_lr_factor, self.sigma_reg = sigma_lr_factor, sigma_reg
        self.orders = jet_orders(order, dim)
        self.init_sigma = float(init_sigma)
        log2_sigma = torch.tensor(math.log2(init_sigma))
        if self.learn_sigma:
            self.log2_sigma = nn.Parameter(log2_sigma)
        else:
            self.register_buffer("log2_sigma", log2_sigma)
        self.alpha = nn.Parameter(torch.empty(cout, cin, self.scales * len(self.orders)))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.resolution_ratio = 1.0  # set by change_resolution; multiplies sigma
        self._input_size: tuple[int, ...] | None = None  # last input's spatial size, for the cap
        # The reference draws alpha ~ N(0, 1). We scale it so that the sampled kernel's expected
        # energy per (out, in) pair equals that of nn.Conv's default init, 1 / (3 cin): the layer
        # then starts at a conv's output scale and Adam's steps are the same size relative to it.
        with torch.no_grad():
            top = init_sigma * 2 ** (self.scales - 1)  # the largest scale's
            energy = self.basis([support_half_width(top, k)] * dim).square().sum()
            nn.init.normal_(self.alpha, 0.0, math.sqrt(1.0 / (3 * cin * energy.item())))

    def sigma(self) -> torch.Tensor:
        sigma = torch.exp2(self.log2_sigma)
        return sigma if self.resolution_ratio == 1.0 else sigma * self.resolution_ratio  # (x 1.0: an op, no change)

    def host_tensors(self) -> list[torch.Tensor]:
        return [self.sigma()]  # the support's input, copied once per step (methods/hooks.py)

    def half_widths(self, input_size: tuple[int, ...] | None, scale: int | None = None) -> list[int]:
        """The support's half-width per dimension at scale `scale` (sigma * 2^scale; None: the largest)."""
        (sigma,) = hooks.host_values(self)
        sigma = sigma * 2 ** (self.scales - 1 if scale is None else scale)
        # a non-finite sigma: a diverged run, which the protocol stops at the epoch's end
        h = support_half_width(sigma, self.k) if math.isfinite(sigma) else 1
        # a half-width of n - 1 already reaches every input from every output
        return [h if input_size is None else min(h, n - 1) for n in (input_size or [None] * self.dim)]

    def basis(self, half_widths: list[int]) -> torch.Tensor:
        """The basis filters B_f, shape (F, K) in 1D or (F, Kh, Kw) in 2D."""
        return self.basis_at(self.sigma(), half_widths)

    def basis_at(self, sigma: torch.Tensor, half_widths: list[int]) -> torch.Tensor:
        """The basis filters of one scale sigma on the grid of `half_widths`."""
        per_axis = [gaussian_derivatives(sigma, h, self.order) for h in half_widths]  # (N + 1, K_d) each
        if self.dim == 1:
            return per_axis[0]
        rows = per_axis[0][[i for i, _ in self.orders]]
        cols = per_axis[1][[j for _, j in self.orders]]
        return rows[:, :, None] * cols[:, None, :]

    def sample_kernel(self) -> torch.Tensor:
        """The kernel for the last input size (uncapped before the first forward), (C_out, C_in, K...)."""
        basis = self.basis(self.half_widths(self._input_size))
        return torch.einsum("ocf,f...->oc...", self.alpha, basis)

    def batch_key(self):
        """Layers with equal keys sample their kernels in one batched call (methods/kernelbank.py)."""
        return (self.dim, self.order, self.alpha.device, self.alpha.dtype)

    @staticmethod
    def sample_together(layers: list[NJetConv]) -> list[torch.Tensor]:
        """`sample_kernel()` of every layer (equal batch keys), from one batched evaluation.

        Every layer's basis is sampled on the grid of the largest half-width H, as zero outside its own
        support [-h, h] (the Gaussian normalised there), contracted with its alpha, and cut to its own
        (2h + 1)-sides: what its own call gives, to float rounding.
        """
        first = layers[0]
        dim, order, device, dtype = first.dim, first.order, first.alpha.device, first.alpha.dtype
        halves = [layer.half_widths(layer._input_size) for layer in layers]
        top = max(max(h) for h in halves)
        x = torch.arange(-top, top + 1, dtype=dtype, device=device)
        # every layer's sigma() in one exp2 (the same elementwise ops, so the same values)
        s = torch.exp2(kernelbank.stack([layer.log2_sigma for layer in layers]))
        ratios = [layer.resolution_ratio for layer in layers]
        if any(r != 1.0 for r in ratios):
            s = s * _constant(("ratios", tuple(ratios), dtype), device, lambda: torch.tensor(ratios, dtype=dtype))
        s = s.view(-1, 1, 1)  # (B, 1, 1)
        inside = _constant(("inside", top, tuple(map(tuple, halves))), device,
                           lambda: torch.tensor([[[abs(v) <= h for v in range(-top, top + 1)] for h in hs]
                                                 for hs in halves]))  # (B, dim, 2H + 1)  # fmt: skip
        g = torch.exp(-(x**2) / (2 * s**2)) * inside
        g = g / g.sum(-1, keepdim=True)
        h = hermite(order, x / (math.sqrt(2) * s))  # (N + 1, B, 1, 2H + 1)
        signs = _constant(("signs", order, dtype), device,
                          lambda: torch.tensor([(-1 / math.sqrt(2)) ** n for n in range(order + 1)], dtype=dtype))  # fmt: skip
        per_axis = (signs.view(-1, 1, 1, 1) * h * g).movedim(0, 2)  # (B, dim, N + 1, 2H + 1)
        if dim == 1:
            basis = per_axis[:, 0]  # (B, F, K)
        else:
            rows_idx = _constant(("rows", order), device, lambda: torch.tensor([i for i, _ in first.orders]))
            cols_idx = _constant(("cols", order), device, lambda: torch.tensor([j for _, j in first.orders]))
            rows = per_axis[:, 0].index_select(1, rows_idx)
            cols = per_axis[:, 1].index_select(1, cols_idx)
            basis = rows[:, :, :, None] * cols[:, :, None, :]  # (B, F, K, K)
        # W[o, c] = sum_f alpha[o, c, f] B_f: one batched product per run of consecutive layers with equal alpha
        # shapes (a network's layers but its first and last, mostly), not one per layer
        out = []
        F, grid = basis.shape[1], basis.shape[2:]
        start = 0
        while start < len(layers):
            end = start + 1
            while end < len(layers) and layers[end].alpha.shape == layers[start].alpha.shape:
                end += 1
            shape = layers[start].alpha.shape[:2]
            alpha = kernelbank.stack([layer.alpha for layer in layers[start:end]]).view(end - start, -1, F)
            w = torch.bmm(alpha, basis[start:end].reshape(end - start, F, -1)).view(end - start, *shape, *grid)
            out += w.unbind(0)
            start = end
        for i, hs in enumerate(halves):
            for d, hd in enumerate(hs):
                if hd != top:
                    out[i] = out[i].narrow(2 + d, top - hd, 2 * hd + 1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[2:])
        bank = self.__dict__.get("_bank")
        weight = None
        if bank is not None and bank.active:  # the network's forward: one batched call for all its N-Jet layers
            weight = bank.kernel(self)
            if size != self._input_size and weight.shape[2:] != tuple(2 * h + 1 for h in self.half_widths(size)):
                weight = None  # the bank capped the support for another input size
        self._input_size = size
        if weight is None:
            weight = self.sample_kernel()
        # causal: the same kernel applied causally, i.e. centred h steps in the past
        return conv_with_kernel(x, weight, self.bias, causal=self.causal)

    # -- hooks (methods/hooks.py) --------------------------------------------------------
    def size_parameters(self) -> list[nn.Parameter]:
        return [self.log2_sigma] if self.learn_sigma else []

    @property
    def regularizes(self) -> bool:
        return self.sigma_reg != 0

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
        hooks.forget_host_values(self)


@register_method(
    "rfnn",
    description="RFNN: structured receptive fields, a fixed basis of scale-normalised Gaussian derivatives up to "
    "order N at one or several fixed scales (sigma * 2^i), learned weights over it (N-Jet with the scale frozen)",
    paper="Jacobsen, van Gemert, Lou, Smeulders: Structured Receptive Fields in CNNs (CVPR)",
    year=2016,
    dims=(1, 2),
    causal=True,
    resolution_change=True,
    learned_size=False,
    kernel_size_unit="taps: fixed support side 2*ceil(k*sigma_max+0.5)+1 per dimension (sigma_max the largest "
    "scale), capped at the input size",
)
class RFNNConv(NJetConv):
    """N-Jet with the scale frozen. Defaults: the first layer of the paper's MNIST net, order 3 at sigma 1.5
    on 11 x 11 (k = 3 gives the side 2 ceil(3 * 1.5 + 0.5) + 1 = 11), one scale per layer.

    With `scales` = S > 1 the basis is the paper's multi-scale dictionary (its ImageNet net): the same
    Gaussian derivatives at sigma, 2 sigma, ..., 2^(S-1) sigma, each on its own support ceil(k sigma_i + 0.5)
    (the Gaussian normalised there), zero-padded to the largest scale's support, S * F filters in all; the
    kernel is W[o, c] = sum_{i, f} alpha[o, c, i F + f] B_{i, f}, alpha learned, the basis frozen. Order 3 at
    sigma = 1, 2, 4, 8 gives 4 * 10 = 40 filters in 2D.
    """

    learn_sigma = False

    def __init__(
        self, cin, cout, *, dim, causal, size=None, order: int = 3, k: float = 3.0,
        sigma: float = 1.5,  # the fixed scale (the smallest of them with scales > 1)
        scales: int = 1,  # fixed scales per layer, sigma * 2^i for i < scales (the paper's ImageNet net: 4 at order 3)
    ):  # fmt: skip
        if int(scales) != scales or scales < 1:
            raise UserError(f"rfnn needs scales >= 1 (an integer), got {scales}")
        self.scales = int(scales)  # set first: N-Jet's __init__ sizes alpha and its init from it
        super().__init__(cin, cout, dim=dim, causal=causal, order=order, k=k, init_sigma=sigma)

    def basis(self, half_widths: list[int]) -> torch.Tensor:
        """The S * F basis filters on the grid of `half_widths` (the largest scale's support), scale-major."""
        if self.scales == 1:
            return super().basis(half_widths)
        sigma, parts = self.sigma(), []
        for i in range(self.scales):
            # each scale on its own support, cut where the grid is (the input size's cap)
            own = [min(h, top) for h, top in zip(self.half_widths(None, scale=i), half_widths)]
            b = self.basis_at(sigma * 2**i, own)
            pads = [p for h, top in zip(reversed(own), reversed(half_widths)) for p in (top - h, top - h)]
            parts.append(torch.nn.functional.pad(b, pads))
        return torch.cat(parts)

    def batch_key(self):
        return super().batch_key() if self.scales == 1 else (*super().batch_key(), self.scales)

    @staticmethod
    def sample_together(layers: list[RFNNConv]) -> list[torch.Tensor]:
        """N-Jet's batched sampling for one scale per layer; with several, each layer samples its own."""
        if layers[0].scales == 1:
            return NJetConv.sample_together(layers)
        return [layer.sample_kernel() for layer in layers]
