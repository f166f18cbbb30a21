"""CKConv: a convolution whose kernel is a continuous function, sampled by a kernel network.

Romero, Kuzina, Bekkers, Tomczak, Hoogendoorn: "CKConv: Continuous Kernel Convolution for
Sequential Data" (ICLR 2022). The kernel net (methods/kernelnets.py) is evaluated on the
relative-position grid linspace(-1, 1, K) per dimension; the kernel covers the whole input:
K = L on causal sequences (position +1 is the present step, -1 the oldest), K = H + 1 (H
even) or H (H odd) on images, so a centred kernel reaches every pixel. `kernel_size`
overrides K.

Two SIREN kernel nets: the FlexConv repository's (default; its CKCNN rows) and, with
`weight_norm=True`, the CKConv repository's, which its paper's numbers come from: weight norm
on every layer and U(-1, 1) biases (methods/kernelnets.py). At 30 -> 30 channels the latter's
sampled kernel starts with std 0.7, the former's with 0.1; on sMNIST the CKCNN has 98,286
parameters instead of 95,300.

`CKConv` is also the base of FlexConv (methods/flexconv.py), which only adds the mask and
the crop: the grid, the sampling, the eval-mode cache, the regularisers and the
resolution change live here.

- Eval-mode cache: without gradients and in eval mode, the sampled kernel is kept until a
  parameter changes (keyed on the parameters' version counters and storage) or the grid does.
- Cross-resolution (FlexConv paper, Table 4; methods.md A.5): `change_resolution(ratio)`
  resamples the grid to ratio*(K_train - 1) + 1 points (odd when centred), so the spacing
  follows the new sampling rate, and multiplies the kernel by the sampling-rate ratio
  (1/ratio)^dim. The original CKConv's extra Gaussian smoothing on upsampling is not done.
- Regularisers via `regularization_loss()`, both off by default:
  `kernel_wd`: the repos' "weight decay", wd * (||sampled kernel||_2 + ||bias||_2), an
  un-squared norm of the sampled kernel (methods.md A.9);
  `weight_dropout` (the CKConv repo's): dropout on the sampled kernel in training, off by default;
  `antialias` (MFN kernel nets only): the Nyquist penalty of methods.md A.4, weight 0.1 in
  the paper's cross-resolution runs. It is off by default because the paper's other runs
  do not use it and, at the default init, it is far from zero (MAGNet starts above the
  Nyquist bound of a 33-grid), so it changes training.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.base import UserError
from methods import kernelbank, register_method
from methods.functional import conv_with_kernel
from methods.kernelnets import make_kernel_net

GAUSS_STDDEVS = 2.0  # envelope bandwidth counted by the anti-aliasing bound (paper runs)


def horizon(size, dim: int, causal: bool, kernel_size: int | None) -> tuple[int, ...]:
    """Grid points per dimension: the whole input (see the module docstring), or `kernel_size`."""
    if kernel_size is not None:
        k = int(kernel_size)
        if k < 1 or (not causal and k % 2 == 0):
            raise UserError(f"kernel_size must be {'>= 1' if causal else 'odd'} here, got {kernel_size}")
        return (k,) * dim
    sizes = (size,) * dim if isinstance(size, int) else tuple(size)
    if causal:
        return (int(sizes[0]),)
    return tuple(int(s) + 1 - int(s) % 2 for s in sizes)


class CKConv(nn.Module):
    def __init__(
        self, cin: int, cout: int, *, dim: int, causal: bool, size, kernel_net: str = "siren",
        kernel_size: int | None = None, kernel_hidden: int = 32, kernel_layers: int = 3, omega_0: float = 30.0,
        input_scale: float | None = None, init_spatial: float = 1.0, antialias: float = 0.0, kernel_wd: float = 0.0,
        weight_norm: bool = False, weight_dropout: float = 0.0,
    ):  # fmt: skip
        super().__init__()
        if causal and dim != 1:
            raise UserError("a causal continuous-kernel convolution is 1D only")
        if antialias and kernel_net == "siren":
            raise UserError("antialias bounds the frequencies of an MFN kernel net; SIREN has no such bound")
        if antialias < 0 or kernel_wd < 0:
            raise UserError(f"antialias and kernel_wd must be >= 0, got {antialias}, {kernel_wd}")
        if not 0 <= weight_dropout < 1:
            raise UserError(f"weight_dropout must be in [0, 1), got {weight_dropout}")
        self.weight_dropout = float(weight_dropout)
        if kernel_hidden < 1 or kernel_layers < (2 if kernel_net == "siren" else 1):
            raise UserError(f"kernel net too small: kernel_hidden={kernel_hidden}, kernel_layers={kernel_layers}")
        self.cin, self.cout, self.dim, self.causal = cin, cout, dim, causal
        self.train_grid = horizon(size, dim, causal, kernel_size)
        self.grid = self.train_grid
        self.rate_norm = 1.0
        self.net = make_kernel_net(
            kernel_net, dim, cin * cout, hidden=kernel_hidden, no_layers=kernel_layers,
            omega_0=omega_0, input_scale=input_scale, init_spatial=init_spatial, weight_norm=weight_norm,
        )  # fmt: skip
        self.bias = nn.Parameter(torch.zeros(cout))
        self.antialias, self.kernel_wd = float(antialias), float(kernel_wd)
        self._cache = None  # (key, kernel) in eval mode
        self._positions = None  # (key, positions, axes)
        self._last_kernel = None  # this training step's kernel, for kernel_wd

    # -- the part FlexConv overrides ---------------------------------------------
    def crop(self) -> list[tuple[int, int]]:
        """Per dimension, the [start, stop) grid indices the kernel is sampled on."""
        return [(0, k) for k in self.grid]

    def sampling_crop(self) -> list[tuple[int, int]]:
        """The crop the kernel is sampled on: crop(), or a larger one whose extra taps envelope() zeroes."""
        return self.crop()

    def bucket_keep(self, dtype: torch.dtype) -> torch.Tensor | None:
        """Taps of the sampling crop that crop() keeps (FlexConv's shape buckets); None: every one."""
        return None

    def envelope(self, axes: list[torch.Tensor]) -> torch.Tensor | None:
        """A factor on the kernel's positions, shape (k_1, ..., k_dim), or None."""
        return None

    def batch_key(self):
        """Layers with equal keys sample their kernels in one batched call (methods/kernelbank.py); None: alone."""
        net = kernelbank.net_signature(self.net)
        return None if net is None else (self.grid, self.rate_norm, net, self.bias.device)

    @staticmethod
    def sample_together(layers: list[CKConv]) -> list[torch.Tensor]:
        return kernelbank.sample_continuous(layers)

    @staticmethod
    def batched_envelope(layers: list[CKConv], axes: list[torch.Tensor]) -> torch.Tensor | None:
        """`envelope(axes)` of every layer, stacked: (len(layers), k_1, ..., k_dim), or None."""
        return None

    def mask_frequency(self) -> torch.Tensor | float:
        return 0.0

    # -- sampling ----------------------------------------------------------------
    def _grid_positions(self, crop, device, dtype):
        key = (tuple(crop), self.grid, device, dtype)
        if self._positions is None or self._positions[0] != key:
            axes = []
            for (start, stop), k in zip(crop, self.grid):
                step = 2.0 / (k - 1) if k > 1 else 0.0
                axes.append((torch.arange(start, stop, dtype=torch.float64) * step - 1.0).to(device, dtype))
            mesh = torch.meshgrid(*axes, indexing="ij")
            self._positions = (key, torch.stack([m.reshape(-1) for m in mesh], 1), axes)
        return self._positions[1], self._positions[2]

    def sample_kernel(self) -> torch.Tensor:
        """The kernel on the current (cropped) grid, shape (C_out, C_in, k_1, ..., k_dim)."""
        crop = self.sampling_crop()
        pos, axes = self._grid_positions(crop, self.bias.device, self.bias.dtype)
        # sines of large arguments need float32: keep the kernel net out of any autocast
        with torch.autocast(self.bias.device.type, enabled=False):
            kernel = self.net(pos).view(self.cout, self.cin, *(stop - start for start, stop in crop))
            factor = self.envelope(axes)
            if self.rate_norm != 1.0:
                factor = self.rate_norm if factor is None else factor * self.rate_norm
            return kernel if factor is None else kernel * factor

    def kernel(self) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return kernelbank.kernel_of(self)  # in the network's forward: one batched call for all its layers
        key = (self.grid, self.rate_norm, tuple((p._version, p.data_ptr()) for p in self.parameters()))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.sample_kernel())
        return self._cache[1]

    def train(self, mode: bool = True):
        self._cache, self._last_kernel = None, None
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel()
        if self.training and self.kernel_wd:
            self._last_kernel = kernel
        if self.training and self.weight_dropout:  # the CKConv repo's weight_dropout: on the sampled kernel
            kernel = torch.nn.functional.dropout(kernel, self.weight_dropout)
        return conv_with_kernel(x, kernel, self.bias, causal=self.causal)

    # -- hooks (methods/hooks.py) --------------------------------------------------
    def kernel_sizes(self) -> float | list[float]:
        sizes = [float(stop - start) for start, stop in self.crop()]
        return sizes[0] if self.dim == 1 else sizes

    def change_resolution(self, ratio: float) -> None:
        """Run on inputs `ratio` times the training resolution (1.0 restores it)."""
        if ratio <= 0:
            raise ValueError(f"resolution ratio must be positive, got {ratio}")
        grid = []
        for k in self.train_grid:
            new = round(ratio * (k - 1)) + 1
            grid.append(new + 1 if not self.causal and new % 2 == 0 else new)
        self.grid, self.rate_norm = tuple(grid), ratio ** (-self.dim)
        self._cache = None

    def aliasing_penalty(self) -> torch.Tensor:
        """sum_l ReLU(f_l - f_Nyquist / (L+1))^2 over the kernel net's L+1 filters (methods.md A.4)."""
        n = self.net.n_filters
        freqs = self.net.max_frequencies(GAUSS_STDDEVS) + self.mask_frequency() / n
        nyquist = (min(self.grid) - 1) / 4.0  # cycles per unit for K samples on [-1, 1]
        return torch.relu(freqs - nyquist / n).square().sum()

    @property
    def regularizes(self) -> bool:
        return bool(self.antialias or self.kernel_wd)

    def regularization_loss(self) -> torch.Tensor:
        loss = self.bias.new_zeros(())
        if self.antialias:
            loss = loss + self.antialias * self.aliasing_penalty()
        if self.kernel_wd:
            kernel = self._last_kernel if self._last_kernel is not None else self.sample_kernel()
            loss = loss + self.kernel_wd * (kernel.norm() + self.bias.norm())
        return loss

    def extra_repr(self) -> str:
        return f"{self.cin}, {self.cout}, grid={self.grid}, causal={self.causal}"


CARD = dict(
    paper="Romero, Kuzina, Bekkers, Tomczak, Hoogendoorn: CKConv: Continuous Kernel Convolution for Sequential Data (ICLR)",
    year=2022,
    dims=(1, 2),
    causal=True,
    resolution_change=True,
    deterministic_cuda=True,
    learned_size=False,
    kernel_size_unit="taps per dimension (the whole grid)",
)


@register_method(
    "ckconv",
    description="continuous kernel over the whole input from a SIREN kernel net",
    references=("CKCNN (100k)", "CKCNN (1M)", "FlexNet-7 (CKCNN SIREN)"),
    **CARD,
)
def ckconv(
    cin, cout, *, dim, causal, size,
    kernel_size: int | None = None,  # side of the kernel's grid; None: the task's horizon (`horizon`)
    omega_0: float = 30.0,  # the SIREN's first-layer frequency factor
    kernel_hidden: int = 32,  # hidden units of the kernel net
    kernel_layers: int = 3,  # layers of the kernel net
    kernel_wd: float = 0.0,  # weight decay on the sampled kernel (a loss term)
    weight_norm: bool = False,  # True: the CKConv repo's kernel net (its paper's numbers); False: the FlexConv repo's
    weight_dropout: float = 0.0,  # dropout on the sampled kernel in training (CKConv's 1M CKCNN on sCIFAR10: 0.1)
):  # fmt: skip
    return CKConv(
        cin, cout, dim=dim, causal=causal, size=size, kernel_net="siren", kernel_size=kernel_size,
        kernel_hidden=kernel_hidden, kernel_layers=kernel_layers, omega_0=omega_0, kernel_wd=kernel_wd,
        weight_norm=weight_norm, weight_dropout=weight_dropout,
    )  # fmt: skip


@register_method(
    "ckconv_magnet",
    description="CKConv with a MAGNet kernel net, no mask (FlexConv paper's ablation)",
    **{**CARD, "paper": "Romero et al.: FlexConv (ICLR), CIFAR-10 ablation"},
)
def ckconv_magnet(
    cin, cout, *, dim, causal, size,
    kernel_size: int | None = None,  # side of the kernel's grid; None: the task's horizon (`horizon`)
    input_scale: float = 25.6,  # the MFN kernel net's input scale
    kernel_hidden: int = 32,  # hidden units of the kernel net
    kernel_layers: int = 3,  # layers of the kernel net
    antialias: float = 0.0,  # weight of the anti-aliasing penalty on the kernel net's frequencies (0: off)
    kernel_wd: float = 0.0,  # weight decay on the sampled kernel (a loss term)
):  # fmt: skip
    # without a mask the Gabor envelopes start anywhere on the grid: init_spatial = 1 (FlexConv repo)
    return CKConv(
        cin, cout, dim=dim, causal=causal, size=size, kernel_net="magnet", kernel_size=kernel_size,
        kernel_hidden=kernel_hidden, kernel_layers=kernel_layers, input_scale=input_scale, init_spatial=1.0,
        antialias=antialias, kernel_wd=kernel_wd,
    )  # fmt: skip
