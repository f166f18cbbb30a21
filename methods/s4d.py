"""S4D: the diagonal state-space model's kernel as an explicit long convolution (`s4d`).

Gu, Gupta, Goel, Re: "On the Parameterization and Initialization of Diagonal State Space Models"
(NeurIPS 2022; code state-spaces/s4, Apache-2.0); methods.md Part 2, section 7. Written from the
paper's formulas.

Per channel h, a diagonal SSM x' = A x + B u, y = C x + D u with N/2 complex modes (and their
conjugates), discretised by zero-order hold at step Delta_h, B = 1 (absorbed into C), is the
convolution with the kernel over lags l = 0, 1, ...

    k_h[l] = 2 Re sum_n C_hn (exp(Delta_h A_hn) - 1) / A_hn exp(l Delta_h A_hn),

plus D_h u. Learned: log Delta, log(-Re A), Im A, C (complex), D. Init S4D-Lin: Delta
log-uniform in [dt_min, dt_max] = [0.001, 0.1], A_n = -1/2 + i pi n, C ~ CN(0, 1), D ~ N(0, 1).
The kernel is sampled on every lag the input has and goes through the project's convolution
(methods/functional.py; its cost model takes the FFT for kernels this long).

As a layer: a pointwise C_in -> C_out mixing (PyTorch's default init, with bias), then one SSM
per output channel, so even the first layer of a one-channel sequence has C_out SSMs (S4 runs on
the model width, after its encoder). The S4 block's GELU and output mixing are the backbone's
norm, ReLU and next layer.
- Causal sequences: lags 0 .. L-1, the whole input.
- Centred sequences: bidirectional as S4's, a second C for the future side (lags 1 .. M) with
  the same A and Delta; M from CKConv's horizon (methods/ckconv.py).
- Images: the outer product of one bidirectional kernel per axis, each axis with its own SSM,
  as S4ND (Nguyen et al., NeurIPS 2022) does.
The SSM parameters (Delta, A) train at min(ssm_lr, lr), ssm_lr = 1e-3, without weight decay (the
S4 repository's optimizer rule); they set the decay and so the size: `kernel_sizes()` reports per
axis the e-folding length 1/(Delta |Re A|) of the slowest mode in taps (twice it plus one when
centred), capped at the kernel's side, mean over channels. At init 2/Delta: 20 to 2,000 taps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.base import UserError
from methods import kernelbank, register_method
from methods.ckconv import horizon
from methods.functional import conv_with_kernel


@register_method(
    "s4d",
    description="S4D: diagonal state-space kernel (S4D-Lin init) per channel after a pointwise mixing, "
    "as an explicit long convolution; images: per-axis outer product (S4ND)",
    paper="Gu, Gupta, Goel, Re: On the Parameterization and Initialization of Diagonal State Space Models (NeurIPS)",
    year=2022,
    dims=(1, 2),
    causal=True,
    learned_size=True,
    kernel_size_unit="taps per dimension: e-folding length 1/(dt |Re A|) of the slowest mode (2x + 1 centred), "
    "capped at the kernel, mean over channels",
    references=("S4D (example.py, 200K)",),
)
class S4DConv(nn.Module):
    def __init__(
        self, cin: int, cout: int, *, dim: int, causal: bool, size,
        state_size: int = 64,  # N, the state size per SSM (N/2 complex modes and their conjugates)
        dt_min: float = 0.001,  # the smallest step Delta at init (log-uniform in [dt_min, dt_max])
        dt_max: float = 0.1,  # the largest step Delta at init
        ssm_lr: float = 1e-3,  # learning rate of Delta and A (the group's lr: min(ssm_lr, lr)), without weight decay
        kernel_size: int | None = None,  # side of the kernel's grid; None: the task's horizon (methods/ckconv.py)
    ):  # fmt: skip
        super().__init__()
        if causal and dim != 1:
            raise UserError("a causal S4D is 1D only")
        if state_size < 2 or state_size % 2 or not 0 < dt_min <= dt_max or ssm_lr <= 0:
            raise UserError(
                f"s4d needs an even state_size >= 2, 0 < dt_min <= dt_max and ssm_lr > 0; "
                f"got {state_size}, {dt_min}, {dt_max}, {ssm_lr}"
            )
        self.dim, self.causal, self.ssm_lr = dim, causal, float(ssm_lr)
        self.grid = horizon(size, dim, causal, kernel_size)
        modes, sides = state_size // 2, 1 if causal else 2
        self.mix = (nn.Conv2d if dim == 2 else nn.Conv1d)(cin, cout, 1)
        # one SSM per axis and channel; on the centred sides a second C (the future's)
        log_range = math.log(dt_max) - math.log(dt_min)
        self.log_dt = nn.Parameter(torch.rand(dim, cout) * log_range + math.log(dt_min))
        self.log_A_real = nn.Parameter(torch.full((dim, cout, modes), math.log(0.5)))
        self.A_imag = nn.Parameter(math.pi * torch.arange(modes, dtype=torch.float32).repeat(dim, cout, 1))
        self.C = nn.Parameter(torch.randn(dim, sides, cout, modes, 2) * math.sqrt(0.5))  # CN(0, 1), (re, im)
        self.D = nn.Parameter(torch.randn(cout))

    def axis_kernels(self, axis: int, lags: int) -> torch.Tensor:
        """k[l] for l = 0 .. lags-1 of every side's SSM on `axis`, shape (sides, C_out, lags)."""
        dt = self.log_dt[axis].exp().unsqueeze(-1)
        A = torch.complex(-self.log_A_real[axis].exp(), self.A_imag[axis])  # (C_out, modes)
        C = torch.view_as_complex(self.C[axis]) * (torch.exp(dt * A) - 1) / A  # ZOH with B = 1
        steps = torch.arange(lags, device=A.device, dtype=A.real.dtype)
        powers = torch.exp((dt * A).unsqueeze(-1) * steps)  # (C_out, modes, lags)
        return (2 * torch.matmul(C.transpose(0, 1), powers).real).transpose(0, 1)  # sum over the modes

    def sample_kernel(self) -> torch.Tensor:
        """The depthwise kernel, shape (C_out, 1, k_1, ..., k_dim); causal: the present step last."""
        with torch.autocast(self.D.device.type, enabled=False):  # complex exponentials in float32
            if self.causal:
                return self.axis_kernels(0, self.grid[0])[0].flip(-1).unsqueeze(1)
            kernel = None
            for axis, k in enumerate(self.grid):
                past, future = self.axis_kernels(axis, k // 2 + 1)
                side = torch.cat([past.flip(-1), future[:, 1:]], -1)  # lags M .. 1, 0, then -1 .. -M
                kernel = side if kernel is None else kernel.unsqueeze(-1) * side.unsqueeze(1)
            return kernel.unsqueeze(1)

    def batch_key(self):
        """Layers with equal keys sample their kernels in one batched call (methods/kernelbank.py)."""
        return (self.grid, self.causal, tuple(self.C.shape), self.D.device) if len(set(self.grid)) == 1 else None

    @staticmethod
    def sample_together(layers: list[S4DConv]) -> list[torch.Tensor]:
        """`sample_kernel()` of every layer (equal batch keys; every axis as long), from one batched evaluation
        over layers and axes: the same formulas, stacked."""
        first = layers[0]
        with torch.autocast(first.D.device.type, enabled=False):
            log_dt = kernelbank.stack([layer.log_dt for layer in layers])  # (B, dim, C_out)
            A = torch.complex(-kernelbank.stack([layer.log_A_real for layer in layers]).exp(),
                              kernelbank.stack([layer.A_imag for layer in layers]))  # (B, dim, C_out, modes)  # fmt: skip
            dt = log_dt.exp().unsqueeze(-1)
            C = torch.view_as_complex(kernelbank.stack([layer.C for layer in layers]))  # (B, dim, sides, C_out, modes)
            C = C * (torch.exp(dt * A) - 1).unsqueeze(2) / A.unsqueeze(2)
            lags = first.grid[0] if first.causal else first.grid[0] // 2 + 1
            steps = torch.arange(lags, device=A.device, dtype=A.real.dtype)
            powers = torch.exp((dt * A).unsqueeze(-1) * steps)  # (B, dim, C_out, modes, lags)
            # sum over the modes: a matmul batched over (B, dim, C_out) has fewer ops than einsum's permutes
            k = (2 * torch.matmul(C.transpose(2, 3), powers).real).transpose(2, 3)  # (B, dim, sides, C_out, lags)
            if first.causal:
                return list(k[:, 0, 0].flip(-1).unsqueeze(2).unbind(0))
            sides = torch.cat([k[:, :, 0].flip(-1), k[:, :, 1, :, 1:]], -1)  # (B, dim, C_out, 2M + 1)
            kernel = sides[:, 0]
            for axis in range(1, first.dim):
                kernel = kernel.unsqueeze(-1) * sides[:, axis].view(*kernel.shape[:2], *[1] * (axis - 1), 1, -1)
            return list(kernel.unsqueeze(2).unbind(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.mix(x)
        # in the network's forward, the kernel comes from one batched call for all its S4D layers
        return conv_with_kernel(u, kernelbank.kernel_of(self), None, causal=self.causal) + u * self.D.view(
            1, -1, *[1] * self.dim
        )

    # -- hooks (methods/hooks.py) --------------------------------------------------
    def ssm_parameters(self) -> list[nn.Parameter]:
        return [self.log_dt, self.log_A_real, self.A_imag]

    def param_groups(self, base_lr: float) -> list[dict]:
        return [{"params": self.ssm_parameters(), "lr": min(self.ssm_lr, base_lr), "weight_decay": 0.0}]

    def size_parameters(self) -> list[nn.Parameter]:
        return self.ssm_parameters()

    def kernel_sizes(self) -> float | list[float]:
        """Per axis: 1/(Delta |Re A|) of the slowest mode in taps (2x + 1 centred), capped, mean over channels."""
        decay = (self.log_dt.detach().unsqueeze(-1).exp() * self.log_A_real.detach().exp()).amin(-1)  # (dim, C_out)
        taps = 1.0 / decay if self.causal else 2.0 / decay + 1.0
        sizes = [float(taps[d].clamp(max=k).mean()) for d, k in enumerate(self.grid)]
        return sizes[0] if self.dim == 1 else sizes

    def extra_repr(self) -> str:
        return f"{self.mix.in_channels}, {self.D.numel()}, modes={self.A_imag.shape[-1]}, grid={self.grid}, causal={self.causal}"
