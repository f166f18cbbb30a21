"""Kernel networks: pointwise MLPs mapping relative positions in [-1, 1]^dim to kernel values.

Every net takes positions of shape (N, dim) and returns (out_features, N): the layout
(C_out * C_in, positions) reshapes to a conv weight without a copy.

- `SIREN` (CKConv; Sitzmann et al. 2020, as in the FlexConv repo): sine layers
  y = sin(omega_0 * (W x + b)), `no_layers` linears in all. `weight_norm=True` is the original
  CKConv repo's kernel net instead: every linear weight-normalised, biases U(-1, 1). That repo
  draws the SIREN weights after wrapping, into a tensor the weight norm recomputes from its own
  (g, v) before every forward, so its weights keep PyTorch's default init; so do they here.
- `MFN` (multiplicative filter networks, Fathony et al. 2021): h_1 = g_1(x),
  h_{l+1} = (W_l h_l + b_l) * g_{l+1}(x), out = W_out h_{L+1} + b_out, with L = `no_layers`
  hidden linears and L + 1 filters g_l, each one of
    "magnet":  exp(-1/2 sum_d (gamma_{l,d} (x_d - mu_{l,d}))^2) sin(A_l x + c_l)  (FlexConv's MAGNet)
    "gabor":   exp(-1/2 gamma_l^2 |x - mu_l|^2) sin(A_l x + c_l)                 (isotropic MFN-Gabor)
    "fourier": sin(A_l x + c_l)                                                  (MFN-Fourier)

Initialisations follow the FlexConv repository (methods.md A.2b); `ccnn_init_` redraws an
MFN as the CCNN repository initialises its MAGNet (methods.md A.2c). The filters' parameters
are stacked over l so one batched op evaluates all of them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

FILTERS = ("magnet", "gabor", "fourier")


def _default_bound(fan_in: int) -> float:
    """Bound of PyTorch's default uniform init of a Linear / 1x1 conv (weights and biases)."""
    return 1.0 / math.sqrt(fan_in)


class SIREN(nn.Module):
    def __init__(
        self,
        dim: int,
        out_features: int,
        hidden: int = 32,
        no_layers: int = 3,
        omega_0: float = 30.0,
        weight_norm: bool = False,
    ):
        super().__init__()
        if no_layers < 2:
            raise ValueError(f"SIREN needs no_layers >= 2, got {no_layers}")
        self.omega_0 = float(omega_0)
        sizes = [dim] + [hidden] * (no_layers - 1) + [out_features]
        self.linears = nn.ModuleList(nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        if weight_norm:
            for n, lin in enumerate(self.linears):
                nn.init.uniform_(lin.bias, -1.0, 1.0)
                self.linears[n] = nn.utils.parametrizations.weight_norm(lin)
            return
        with torch.no_grad():
            for n, lin in enumerate(self.linears):
                fan_in = lin.in_features
                # first layer U(+-1/d_in) as in the FlexConv repo (the CKConv repo used U(+-1));
                # later layers U(+-sqrt(6/fan_in)/omega_0); biases keep the default init
                bound = 1.0 / fan_in if n == 0 else math.sqrt(6.0 / fan_in) / self.omega_0
                lin.weight.uniform_(-bound, bound)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        h = pos
        for lin in self.linears[:-1]:
            h = torch.sin(self.omega_0 * lin(h))
        out = self.linears[-1]
        return torch.addmm(out.bias.unsqueeze(1), out.weight, h.t())


class MFN(nn.Module):
    def __init__(
        self,
        dim: int,
        out_features: int,
        hidden: int = 32,
        no_layers: int = 3,
        filter: str = "magnet",
        input_scale: float = 25.6,
        init_spatial: float = 1.0,
        alpha: float = 6.0,
        beta: float = 1.0,
    ):
        super().__init__()
        if filter not in FILTERS:
            raise ValueError(f"unknown MFN filter {filter!r}; known: {', '.join(FILTERS)}")
        if no_layers < 1:
            raise ValueError(f"an MFN needs no_layers >= 1, got {no_layers}")
        self.filter = filter
        n_filters = no_layers + 1
        freq_scale = input_scale / math.sqrt(n_filters)
        bound_in, bound_h = _default_bound(dim), _default_bound(hidden)

        A = torch.empty(n_filters, hidden, dim).uniform_(-bound_in, bound_in) * freq_scale
        if filter == "magnet":
            # anisotropic: one gamma per unit and dimension, Gamma(alpha/(l+1), beta), so later
            # filters start wider; the frequency is tied to it element-wise
            gamma = torch.stack(
                [torch.distributions.Gamma(alpha / (i + 1), beta).sample((hidden, dim)) for i in range(n_filters)]
            )
        elif filter == "gabor":
            # isotropic: one gamma per unit, Gamma(alpha/(L+1), beta) for every filter
            gamma = torch.distributions.Gamma(alpha / n_filters, beta).sample((n_filters, hidden, 1))
        if filter != "fourier":
            A = A * gamma
            self.gamma = nn.Parameter(gamma)
            self.mu = nn.Parameter(torch.empty(n_filters, hidden, dim).uniform_(-init_spatial, init_spatial))
        self.A = nn.Parameter(A)
        self.c = nn.Parameter(torch.empty(n_filters, hidden).uniform_(-math.pi, math.pi))
        # hidden linears U(+-sqrt(1/H)); their biases and the output layer keep the default init
        self.W = nn.Parameter(torch.empty(no_layers, hidden, hidden).uniform_(-bound_h, bound_h))
        self.b = nn.Parameter(torch.empty(no_layers, hidden).uniform_(-bound_h, bound_h))
        self.W_out = nn.Parameter(torch.empty(out_features, hidden).uniform_(-bound_h, bound_h))
        self.b_out = nn.Parameter(torch.empty(out_features).uniform_(-bound_h, bound_h))

    @property
    def n_filters(self) -> int:
        return self.A.shape[0]

    def filters(self, pos: torch.Tensor) -> torch.Tensor:
        """All filter responses g_l(x), shape (L+1, N, H)."""
        g = torch.sin(torch.einsum("nd,lhd->lnh", pos, self.A) + self.c.unsqueeze(1))
        if self.filter == "fourier":
            return g
        diff = pos.unsqueeze(1) - self.mu.unsqueeze(1)  # (L+1, N, H, dim) via broadcasting
        scaled = self.gamma.unsqueeze(1) * diff
        return g * torch.exp(-0.5 * scaled.square().sum(-1))

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        g = self.filters(pos)
        h = g[0]
        for i in range(self.n_filters - 1):
            h = torch.addmm(self.b[i], h, self.W[i].t()) * g[i + 1]
        return torch.addmm(self.b_out.unsqueeze(1), self.W_out, h.t())

    def max_frequencies(self, stddevs: float) -> torch.Tensor:
        """Per filter, an upper bound on its frequency in cycles per unit of x, shape (L+1,).

        max over units and dims of |A|/2pi + stddevs*|gamma|/2pi: the sine's frequency plus the
        bandwidth the Gaussian envelope adds (FlexConv's anti-aliasing bound, methods.md A.4).
        """
        freq = self.A.abs()
        if self.filter != "fourier":
            freq = freq + stddevs * self.gamma.abs()
        return freq.flatten(1).amax(1) / (2 * math.pi)


def ccnn_init_(net: MFN, omega_0: float, init_spatial: float, causal: bool) -> MFN:
    """Initialise `net` in place as CCNN's MAGNet (david-knigge/ccnn; methods.md A.2c).

    Frequencies A_l = U(+-1/sqrt(dim)) * 2 pi omega_0 gamma_l (gamma as drawn), phases c_l = 0;
    envelope centres mu = s U(-1, 1), or on causal sequences 1 - s U(0, 1) (near the present);
    hidden and output linears Kaiming-uniform for a linear layer, U(+-sqrt(3 / H)), with biases 1
    and 0. CCNN's "Chang" scaling of the output layer depends on the kernel's size: the caller's.
    """
    _, hidden, dim = net.A.shape
    with torch.no_grad():
        net.A.uniform_(-_default_bound(dim), _default_bound(dim)).mul_(2 * math.pi * omega_0 * net.gamma)
        net.c.zero_()
        if causal:
            net.mu.copy_(1.0 - init_spatial * torch.rand_like(net.mu))
        else:
            net.mu.uniform_(-init_spatial, init_spatial)
        bound = math.sqrt(3.0 / hidden)
        for weight in (net.W, net.W_out):
            weight.uniform_(-bound, bound)
        net.b.fill_(1.0)
        net.b_out.zero_()
    return net


def make_kernel_net(
    kind: str,
    dim: int,
    out_features: int,
    *,
    hidden: int,
    no_layers: int,
    omega_0: float,
    input_scale: float | None,
    init_spatial: float,
    weight_norm: bool = False,
) -> nn.Module:
    """`kind` is "siren" or an MFN filter; `input_scale=None` takes the FlexConv repo's value for it."""
    if kind == "siren":
        return SIREN(dim, out_features, hidden, no_layers, omega_0, weight_norm)
    if weight_norm:
        raise ValueError("weight_norm is an option of the SIREN kernel net only")
    if input_scale is None:
        # the FlexConv repo passes kernel.input_scale=25.6 to MAGNet and Gabor but not to
        # FourierNet, which keeps its class default of 256; the ablation ran with that
        input_scale = 256.0 if kind == "fourier" else 25.6
    return MFN(dim, out_features, hidden, no_layers, kind, input_scale, init_spatial)
