"""FlexConv: a continuous kernel times a learned Gaussian mask, cropped where the mask is small.

Romero, Bruintjes, Tomczak, Bekkers, Hoogendoorn, van Gemert: "FlexConv: Continuous Kernel
Convolutions with Differentiable Kernel Sizes" (ICLR 2022); methods.md A.2-A.3.

kernel(x) = KernelNet(x) * prod_d exp(-1/2 ((x_d - mu_d) / sigma_d)^2), on the CKConv grid
(methods/ckconv.py). mu and sigma are learned per dimension (sigma_0 = 0.075; mu = 0 on
images and non-causal sequences, +1, the present step, on causal sequences) and sit in their
own optimizer group at 0.1x the learning rate without weight decay. The kernel is sampled
only where the mask is >= 0.1 (the roots are at mu -+ r, r = sigma sqrt(-2 ln 0.1) = 2.146
sigma): centred, the grid points with |x| < max(|mu - r|, |mu + r|) per axis (symmetric, so
sides stay odd); causal, the points with x > mu - r (the kernel always ends at the present).
No crop is made when the root falls outside [-1, 1]. A 33-grid at init gives 5 x 5. The
computed kernel therefore grows and shrinks with sigma; `kernel_sizes()` reports it.

Each image axis is cropped by its own mask root, as in the repository (its code names the rows'
root `x_root` and the columns' `y_root`, but meshes the two cropped axes in the right order).

Differences from the FlexConv repository, on purpose:
- the crop keeps at least the taps next to the mask's centre (3 per axis centred, the
  present and the step before causal). The repo's crop can shrink to the centre tap alone
  (sigma_0 = 0.075 on the 9-grid of an 8-px image: 1 x 1), where the mask, centred on that
  tap, has zero gradient in mean and width: the kernel could never grow again;
- a causal mask whose left root passes +1 keeps those two steps (the repo then keeps the
  whole grid, although every mask value is below the threshold).
Kept from the repository: the Gabor envelopes of MAGNet are initialised around 0 with
spread 1.667 sigma_0 even on causal sequences, where the mask starts at +1 (CCNN moves them
to the present); the mask exponent uses 1/sigma, not 1/(sigma^2 + eps).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.base import UserError
from methods import hooks, kernelbank, register_method
from methods.ckconv import GAUSS_STDDEVS, CKConv
from methods.functional import bucketed_crop

CARD = dict(
    paper="Romero, Bruintjes, Tomczak, Bekkers, Hoogendoorn, van Gemert: FlexConv: Continuous Kernel "
    "Convolutions with Differentiable Kernel Sizes (ICLR)",
    year=2022,
    dims=(1, 2),
    causal=True,
    resolution_change=True,
    deterministic_cuda=True,
    learned_size=True,
    kernel_size_unit="taps per dimension (cropped)",
)
# model names in results/reference/flexconv.csv that are FlexConv with MAGNet
MAGNET_REFERENCES = (
    "FlexNet-3", "FlexNet-3 (wd 1e-5)", "FlexNet-5", "FlexNet-5 (gabor)", "FlexNet-5 (wd 1e-5)", "FlexNet-7",
    "FlexNet-7 (gabor)", "FlexNet-7 (gabor) 16 px", "FlexNet-7 (gabor) 20 px", "FlexNet-7 (gabor+mask)",
    "FlexNet-7 (gabor+mask) 16 px", "FlexNet-7 (gabor+mask) 20 px", "FlexNet-7 (no regularisation)",
    "FlexNet-7 (wd 1e-5)", "FlexNet-7 16 px", "FlexNet-7 20 px", "FlexTCN (as quoted by SMPConv)", "FlexTCN-4",
    "FlexTCN-6",
)  # fmt: skip


@register_method(
    "flexconv",
    description="FlexConv: MAGNet kernel x learned Gaussian mask, cropped (anti-aliasing term off by default)",
    references=MAGNET_REFERENCES,
    **CARD,
)
class FlexConv(CKConv):
    """FlexConv with a MAGNet kernel net; FlexConvGabor, FlexConvFourier and FlexConvSiren: the paper's others."""

    variable_shape = True  # the crop follows the mask (bench/run/fastpath.py); bucket_shapes() bounds it
    kernel_net = "magnet"

    def __init__(
        self, cin: int, cout: int, *, dim: int, causal: bool, size,
        kernel_size: int | None = None,  # side of the kernel's grid; None: the task's horizon (methods/ckconv.py)
        mask_init: float = 0.075,  # the mask's width sigma_0 at init
        mask_threshold: float = 0.1,  # the kernel is cropped where the mask falls below this
        mask_lr_factor: float = 0.1,  # learning rate of the mask's mean and width, times the base lr
        input_scale: float = 25.6,  # the MFN kernel net's input scale
        kernel_hidden: int = 32,  # hidden units of the kernel net
        kernel_layers: int = 3,  # layers of the kernel net
        antialias: float = 0.0,  # weight of the anti-aliasing penalty on the kernel net's frequencies (0: off)
        antialias_mask: bool = False,  # add the mask's frequency to that penalty
        kernel_wd: float = 0.0,  # weight decay on the sampled kernel (a loss term)
    ):  # fmt: skip
        if antialias_mask and not antialias:
            raise UserError("antialias_mask adds the mask to the anti-aliasing term: set antialias > 0 too")
        super().__init__(
            cin, cout, dim=dim, causal=causal, size=size, kernel_net=self.kernel_net, kernel_size=kernel_size,
            kernel_hidden=kernel_hidden, kernel_layers=kernel_layers, input_scale=input_scale, antialias=antialias,
            kernel_wd=kernel_wd, init_spatial=self.init_spatial(mask_init, mask_threshold),
        )  # fmt: skip
        self.add_mask(mask_init, mask_threshold, mask_lr_factor, antialias_mask)

    @staticmethod
    def init_spatial(mask_init: float, mask_threshold: float) -> float:
        """The kernel net's content starts within 1.667 sigma_0 of the centre (FlexConv repo)."""
        if not mask_init > 0 or not 0 < mask_threshold < 1:
            raise UserError(f"need mask_init > 0 and 0 < mask_threshold < 1, got {mask_init}, {mask_threshold}")
        return min(1.0, 1.667 * mask_init)

    def add_mask(self, mask_init: float, mask_threshold: float, mask_lr_factor: float, antialias_mask: bool) -> None:
        dim, causal = self.dim, self.causal
        self.mask_mean = nn.Parameter(torch.full((dim,), 1.0 if causal else 0.0))
        self.mask_width = nn.Parameter(torch.full((dim,), float(mask_init)))
        self.root_factor = math.sqrt(-2.0 * math.log(mask_threshold))
        self.size_lr_factor = float(mask_lr_factor)  # the mask: 0.1x the lr, no weight decay
        self.antialias_mask = bool(antialias_mask)
        self._bucket = None  # with shape bucketing on: the crop the kernel is sampled on (bucket_shapes)

    def host_tensors(self) -> list[torch.Tensor]:
        return [self.mask_mean, self.mask_width]  # the crop's inputs, copied once per step (methods/hooks.py)

    def crop(self) -> list[tuple[int, int]]:
        means, widths = hooks.host_values(self)
        out = []
        for k, mu, sigma in zip(self.grid, means, widths):
            if not (math.isfinite(mu) and math.isfinite(sigma)):
                out.append((0, k))  # a diverged run (the protocol stops it at the epoch's end): the whole grid
                continue
            r = abs(sigma) * self.root_factor
            step = 2.0 / (k - 1) if k > 1 else math.inf
            if self.causal:
                left = mu - r
                # first index with -1 + i*step > left; keep at least the present and the step before
                start = 0 if left <= -1.0 else min(k - 2, math.floor((left + 1.0) / step) + 1)
                out.append((max(start, 0), k))
            else:
                reach = max(abs(mu - r), abs(mu + r))
                half = (k - 1) // 2
                # grid points i*step with i*step < reach, on each side of the centre; at least one
                n = half if reach >= 1.0 else min(half, max(1, math.ceil(reach / step) - 1))
                out.append((half - n, half + n + 1))
        return out

    def envelope(self, axes: list[torch.Tensor]) -> torch.Tensor:
        mask = None
        for d, x in enumerate(axes):
            m = torch.exp(-0.5 * ((x - self.mask_mean[d]) / self.mask_width[d]).square())
            if self._bucket is not None:
                m = m * self._inside(d, x.dtype)
            mask = m if mask is None else mask.unsqueeze(-1) * m
        return mask

    @staticmethod
    def batched_envelope(layers: list[FlexConv], axes: list[torch.Tensor]) -> torch.Tensor:
        means = kernelbank.stack([layer.mask_mean for layer in layers])  # (B, dim)
        widths = kernelbank.stack([layer.mask_width for layer in layers])
        mask = None
        for d, x in enumerate(axes):
            m = torch.exp(-0.5 * ((x - means[:, d : d + 1]) / widths[:, d : d + 1]).square())  # (B, k_d)
            mask = m if mask is None else mask.unsqueeze(-1) * m.view(len(layers), *([1] * d), -1)
        return mask

    # -- shape buckets (a compiled step: bench/run/fastpath.py) --------------------------------------------
    # With bucketing on, the kernel is sampled on bucketed_crop(crop()) (methods/functional.py) and the
    # taps outside crop() are multiplied by exactly 0, decided on the device from the mask parameters by
    # the same float64 arithmetic as crop(): the layer computes what it computes unbucketed, and its shapes
    # change only when a crop crosses a bucket. The bucket is set outside the step (after each optimizer
    # step, on train()/eval() and a resolution change), never read back inside it.
    def bucket_shapes(self, on: bool = True) -> None:
        self._bucket = None
        if on:
            self._bucket = bucketed_crop(self.crop(), self.grid, self.causal)
            self._grid_positions(self._bucket, self.bias.device, self.bias.dtype)  # cached here, not in the step

    def sampling_crop(self) -> list[tuple[int, int]]:
        return self.crop() if self._bucket is None else self._bucket

    def after_host_refresh(self) -> None:
        """After each optimizer step, once the host values are fresh (methods/hooks.py): the next bucket."""
        if getattr(self, "_bucket", None) is not None:
            self.bucket_shapes(True)

    def train(self, mode: bool = True):
        out = super().train(mode)
        self.after_host_refresh()  # parameters may have been loaded (a checkpoint, the best state)
        return out

    def change_resolution(self, ratio: float) -> None:
        super().change_resolution(ratio)
        self.after_host_refresh()

    def bucket_keep(self, dtype: torch.dtype) -> torch.Tensor | None:
        """1 on the sampled taps that crop() keeps, 0 on the bucket's extra ones; None without a bucket."""
        if self._bucket is None:
            return None
        keep = None
        for d in range(self.dim):
            m = self._inside(d, dtype)
            keep = m if keep is None else keep.unsqueeze(-1) * m
        return keep

    def _inside(self, d: int, dtype: torch.dtype) -> torch.Tensor:
        """1 on the taps of axis d's sampling crop that crop() keeps, 0 on the others (the bucket's extra)."""
        (first, last), k = self._bucket[d], self.grid[d]
        mu, sigma = self.mask_mean[d].detach().double(), self.mask_width[d].detach().double()
        r = sigma.abs() * self.root_factor
        step = 2.0 / (k - 1) if k > 1 else math.inf
        index = torch.arange(first, last, device=mu.device, dtype=torch.float64)
        if self.causal:
            left = mu - r
            start = torch.clamp(torch.floor((left + 1.0) / step) + 1, max=k - 2)
            start = torch.where(left <= -1.0, torch.zeros_like(start), start).clamp(min=0)
            keep = index >= start
        else:
            reach = torch.maximum((mu - r).abs(), (mu + r).abs())
            half = (k - 1) // 2
            n = torch.clamp(torch.ceil(reach / step) - 1, min=1, max=half)
            n = torch.where(reach >= 1.0, torch.full_like(n, half), n)
            keep = (index - half).abs() <= n
        return keep.to(dtype)

    def mask_frequency(self) -> torch.Tensor | float:
        if not self.antialias_mask:
            return 0.0
        return GAUSS_STDDEVS * (1.0 / self.mask_width.abs()).max() / (2 * math.pi)

    def size_parameters(self) -> list[nn.Parameter]:
        return [p for p in (self.mask_mean, self.mask_width) if isinstance(p, nn.Parameter)]


@register_method(
    "flexconv_gabor", description="FlexConv with an isotropic MFN-Gabor kernel net (paper's ablation)", **CARD
)
class FlexConvGabor(FlexConv):
    kernel_net = "gabor"


@register_method("flexconv_fourier", description="FlexConv with an MFN-Fourier kernel net (paper's ablation)", **CARD)
class FlexConvFourier(FlexConv):
    kernel_net = "fourier"

    def __init__(
        self, cin: int, cout: int, *,
        input_scale: float = 256.0,  # the FlexConv repo never passes its 25.6 to FourierNet (methods/kernelnets.py)
        **kw,
    ):  # fmt: skip
        super().__init__(cin, cout, input_scale=input_scale, **kw)


@register_method(
    "flexconv_siren", description="FlexConv with a SIREN kernel net (paper's ablation)",
    references=("FlexNet-7 (FlexConv SIREN)",), **CARD,
)  # fmt: skip
class FlexConvSiren(FlexConv):
    kernel_net = "siren"

    def __init__(
        self, cin: int, cout: int, *, dim: int, causal: bool, size, kernel_size: int | None = None,
        mask_init: float = 0.075, mask_threshold: float = 0.1, mask_lr_factor: float = 0.1,
        omega_0: float = 30.0,  # the SIREN's first-layer frequency factor
        kernel_hidden: int = 32, kernel_layers: int = 3, kernel_wd: float = 0.0,
    ):  # fmt: skip
        CKConv.__init__(  # not FlexConv's: a SIREN takes omega_0, no input scale and no anti-aliasing
            self, cin, cout, dim=dim, causal=causal, size=size, kernel_net=self.kernel_net, kernel_size=kernel_size,
            kernel_hidden=kernel_hidden, kernel_layers=kernel_layers, omega_0=omega_0, kernel_wd=kernel_wd,
            init_spatial=self.init_spatial(mask_init, mask_threshold),
        )  # fmt: skip
        self.add_mask(mask_init, mask_threshold, mask_lr_factor, False)
