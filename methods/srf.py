"""Shelhamer, Wang, Darrell (2019), "Blurring the line between structure and learning": a free-form filter composed with a learned Gaussian.

Registered as `srf_gauss` (the name stays for compatibility). It is NOT Jacobsen et al.'s
structured receptive fields (RFNN, CVPR 2016: a fixed Gaussian-derivative basis with learned
weights), which is `rfnn` (methods/njet.py, N-Jet with the scale frozen).

The layer computes f * (g_Sigma * x): a depthwise Gaussian blur with one learned covariance per
input channel, then a small free-form conv (3 x 3, or 3 taps). `covariance`:
- "spherical" (default): Sigma = sigma^2 I, sigma = 2^s learned; a separable blur.
- "full" (2D only): Shelhamer's full covariance, anisotropic and rotated, Sigma = L L^T with
  L = [[e^a, 0], [c, e^b]] (log-Cholesky: 3 parameters per channel, any positive-definite Sigma),
  initialised to init_sigma^2 I. A non-separable blur on a fixed grid of half-width
  `max_half_width` (capped at the input's size - 1): the grid's size is set by the layer, not by
  Sigma, so no value is read back to the host; the Gaussian is cut to the box of half-widths
  ceil(2 sqrt(Sigma_dd)) per axis, the spherical rule, and is then equal to the spherical blur
  when Sigma = sigma^2 I. Sigma's growth past the grid is cut off there.
The Gaussian's support follows sigma, half-width ceil(2 sigma) (side 2 ceil(2 sigma) + 1),
recomputed every forward from the detached sigma as in N-Jet; gradients reach sigma through
the sampled values. The composed filter's size, Gaussian side + k - 1, is what the layer
learns.

`dynamic=True` is the paper's dynamic inference: a small conv (3 x 3, or 3 taps; causal on causal
tasks) predicts each pixel's Gaussian from the layer's input, log2 sigma per pixel ("spherical") or
per pixel and axis ("diagonal", 2D), bounded to [0.25, max_half_width / 2] through a sigmoid; it
starts at init_sigma everywhere (zero weights), i.e. as the static layer. Each output pixel is
blurred with its own Gaussian (local filtering, im2col): the grid is fixed at max_half_width
(capped at the input's size - 1), so nothing is read back to the host, and each pixel's Gaussian
is cut to its own support ceil(2 sigma) per axis (detached) and normalised there. The Gaussian is
separable per pixel, so the windows are strided views of the padded input contracted one row
offset at a time (O(K^2) per pixel and channel, no K^2-fold copy of the input). On 1D inputs it
is the same per step; causal, every step's Gaussian is centred max_half_width steps back. The
regressor's parameters are the layer's size parameters (lower lr, no decay). Not done: a dynamic
full covariance, and the paper's dilation of the free-form filter for large sigma.

Written from the description in shared/reference/methods.md, Part 2, section 3a.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bench.base import UserError
from methods import hooks, register_method
from methods.functional import conv_with_kernel


@register_method(
    "srf_gauss",
    description="Shelhamer et al.'s blur + conv composition: a learned per-channel Gaussian blur (support follows "
    "sigma; covariance=full: anisotropic, rotated; dynamic: per-pixel sigma predicted from the input) then a "
    "free-form 3x3 conv; not Jacobsen's RFNN (that is rfnn)",
    paper="Shelhamer, Wang, Darrell: Blurring the Line Between Structure and Learning to Optimize and Adapt Receptive Fields (arXiv)",
    year=2019,
    dims=(1, 2),
    causal=True,
    learned_size=True,
    kernel_size_unit="taps: per dimension, mean over input channels (dynamic: over the last batch's pixels) of the "
    "composed support 2*ceil(2*sigma)+1 + k-1",
)
class GaussianBlurConv(nn.Module):
    variable_shape = True  # its support follows sigma (bench/run/fastpath.py: not compiled by default)
    DYNAMIC_MIN_SIGMA = 0.25  # dynamic: the smallest per-pixel sigma (its neighbours then weigh exp(-8))

    def __init__(
        self, cin: int, cout: int, *, dim: int, causal: bool, size=None,
        kernel_size: int = 3,  # side of the free-form filter
        init_sigma: float = 1.0,  # the Gaussians' sigma at init
        sigma_lr_factor: float = 0.1,  # learning rate of the blur's scale parameters, times the base lr
        covariance: str = "spherical",  # "spherical" (sigma^2 I), "full" (2D, non-causal, static) or "diagonal" (2D, dynamic)
        max_half_width: int = 4,  # with covariance="full" or dynamic, the half-width of the blur's fixed grid
        dynamic: bool = False,  # Shelhamer's dynamic inference: a 3x3 conv predicts each pixel's Gaussian from the input
    ):  # fmt: skip
        super().__init__()
        if init_sigma <= 0:
            raise ValueError(f"init_sigma must be > 0, got {init_sigma}")
        if dynamic:
            if causal and dim != 1:
                raise UserError("dynamic is causal on 1D inputs only")
            if covariance not in ("spherical", "diagonal") or (covariance == "diagonal" and dim != 2):
                raise UserError(f"dynamic takes covariance spherical, or diagonal in 2D; got {covariance!r} in {dim}D")
        elif covariance not in ("spherical", "full") or (covariance == "full" and (dim != 2 or causal)):
            raise UserError(f"covariance is spherical, or full on non-causal 2D inputs; got {covariance!r} in {dim}D")
        if max_half_width < 1:
            raise UserError(f"max_half_width must be >= 1, got {max_half_width}")
        self.dim, self.causal, self.kernel_size = dim, causal, kernel_size
        self.covariance, self.max_half_width, self.dynamic = covariance, int(max_half_width), bool(dynamic)
        # the scale parameters get the treatment of N-Jet's and FlexConv's mask: lower lr, no decay
        self.size_lr_factor = sigma_lr_factor
        if dynamic:
            # per pixel, log2 sigma = lo + (hi - lo) sigmoid(raw): sigma stays in [DYNAMIC_MIN_SIGMA,
            # max_half_width / 2], so its support ceil(2 sigma) fits the grid; raw from a 3x3 conv
            # (3 taps in 1D, causal on causal tasks) with zero weights at init and the bias of init_sigma:
            # every pixel starts at the static layer's init_sigma, as deformable offsets start at zero
            lo, hi = math.log2(self.DYNAMIC_MIN_SIGMA), math.log2(self.max_half_width / 2)
            if not lo < math.log2(init_sigma) < hi:
                raise UserError(f"dynamic needs {self.DYNAMIC_MIN_SIGMA} < init_sigma < max_half_width / 2 = "
                                f"{self.max_half_width / 2}; got init_sigma={init_sigma}")  # fmt: skip
            self.log2_sigma_range = (lo, hi)
            maps = 2 if covariance == "diagonal" else 1  # log sigma per pixel: one, or one per axis
            self.sigma_net = (nn.Conv2d if dim == 2 else nn.Conv1d)(cin, maps, 3)
            frac = (math.log2(init_sigma) - lo) / (hi - lo)
            with torch.no_grad():
                self.sigma_net.weight.zero_()
                self.sigma_net.bias.fill_(math.log(frac / (1 - frac)))
            self._mean_sides: torch.Tensor | None = None  # the last forward's mean Gaussian side per axis
        elif covariance == "full":  # (a, b, c) per channel: L = [[e^a, 0], [c, e^b]], Sigma = L L^T
            chol = torch.zeros(cin, 3)
            chol[:, :2] = math.log(init_sigma)
            self.chol = nn.Parameter(chol)
        else:
            self.log2_sigma = nn.Parameter(torch.full((cin,), math.log2(init_sigma)))
        # holds the free-form weights (nn.Conv's init); applied below, centred or causal
        self.free_form = (nn.Conv2d if dim == 2 else nn.Conv1d)(cin, cout, kernel_size)
        self._input_size: tuple[int, ...] | None = None

    def half_widths(self, length: int | None) -> torch.Tensor:
        """Each channel's Gaussian half-width ceil(2 sigma), capped at length - 1 (it then reaches everything)."""
        h = torch.ceil(2 * torch.exp2(self.log2_sigma.detach())).long()
        return h if length is None else h.clamp(max=length - 1)

    def host_tensors(self) -> list[torch.Tensor]:
        if self.dynamic:
            return []  # the grid is max_half_width: nothing to read
        # the largest half-width sets the grid's size: copied once per step (methods/hooks.py)
        return [torch.ceil(2 * torch.exp2(self.log2_sigma.detach())).max()]

    def gaussians(self, length: int) -> torch.Tensor:
        """Per-channel Gaussians on a common grid of the largest half-width, (cin, 2H + 1), each zero outside its own support."""
        half = self.half_widths(length)
        (top,) = hooks.host_values(self)
        # min(top, length - 1) is half.max(); a non-finite top is a diverged run (stopped at the epoch's end)
        top = min(int(top), length - 1) if math.isfinite(top) else length - 1
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

    def covariances(self) -> torch.Tensor:
        """The full covariances Sigma = L L^T, shape (cin, 2, 2)."""
        a, b, c = self.chol.unbind(1)
        zero = torch.zeros_like(c)
        L = torch.stack([torch.stack([a.exp(), zero], -1), torch.stack([c, b.exp()], -1)], -2)
        return L @ L.transpose(-1, -2)

    def full_gaussians(self, size: tuple[int, int]) -> torch.Tensor:
        """Per-channel 2D Gaussians N(0, Sigma) on the fixed grid, cut to their box and normalised, (cin, K, K)."""
        top = min(self.max_half_width, max(size) - 1)
        x = torch.arange(-top, top + 1, dtype=self.chol.dtype, device=self.chol.device)
        pos = torch.stack(torch.meshgrid(x, x, indexing="ij"), -1)  # (K, K, 2)
        cov = self.covariances()
        d2 = torch.einsum("hwi,cij,hwj->chw", pos, torch.linalg.inv(cov), pos)  # Mahalanobis distance squared
        half = torch.ceil(2 * cov.diagonal(dim1=-2, dim2=-1).detach().sqrt())  # (cin, 2): the spherical rule per axis
        inside = (x.abs() <= half[:, 0, None])[:, :, None] & (x.abs() <= half[:, 1, None])[:, None, :]
        g = torch.exp(-0.5 * d2) * inside
        return g / g.sum((1, 2), keepdim=True)

    def pixel_sigmas(self, x: torch.Tensor) -> torch.Tensor:
        """Dynamic: each pixel's sigma (one, or one per axis), predicted from the input: (B, 1 or 2, *spatial)."""
        raw = conv_with_kernel(x, self.sigma_net.weight, self.sigma_net.bias, causal=self.causal)
        lo, hi = self.log2_sigma_range
        return torch.exp2(lo + (hi - lo) * torch.sigmoid(raw))

    def pixel_gaussians(self, sigma: torch.Tensor, axis: int, length: int) -> torch.Tensor:
        """Dynamic: each pixel's 1D Gaussian along `axis` on the grid -top..top (top = max_half_width, capped at
        length - 1), cut to its own support ceil(2 sigma) (detached, as the static blur) and normalised there:
        (B, *spatial, 2 top + 1)."""
        top = min(self.max_half_width, length - 1)
        s = sigma[:, axis if sigma.shape[1] > 1 else 0].unsqueeze(-1)
        grid = torch.arange(-top, top + 1, dtype=s.dtype, device=s.device)
        g = torch.exp(-(grid**2) / (2 * s**2)) * (grid.abs() <= torch.ceil(2 * s.detach()))
        return g / g.sum(-1, keepdim=True)

    def dynamic_blur(self, x: torch.Tensor) -> torch.Tensor:
        """Each output pixel blurred with its own Gaussian (Shelhamer's local filtering). The Gaussian is
        separable per pixel (spherical or diagonal Sigma), so the im2col windows are strided views of the
        padded input, contracted one row offset at a time: no (B, C, K^2, H, W) copy is made."""
        sigma = self.pixel_sigmas(x)
        g = [self.pixel_gaussians(sigma, d, n).to(x.dtype) for d, n in enumerate(x.shape[2:])]
        # the composed support per axis, averaged over the batch's pixels, for kernel_sizes (read there)
        self._mean_sides = torch.stack([(2 * torch.ceil(2 * sigma[:, d if sigma.shape[1] > 1 else 0].detach())
                                         .clamp(max=(gd.shape[-1] - 1) // 2) + 1).mean() for d, gd in enumerate(g)])  # fmt: skip
        if self.dim == 1:
            side = g[0].shape[-1]
            pads = (side - 1, 0) if self.causal else (side // 2, side // 2)  # causal: centred top steps back
            windows = F.pad(x, pads).unfold(2, side, 1)  # (B, C, L, K), a view
            return (windows * g[0].unsqueeze(1)).sum(-1)
        gy, gx = g
        ky, kx = gy.shape[-1], gx.shape[-1]
        padded = F.pad(x, (kx // 2, kx // 2, ky // 2, ky // 2))
        height = x.shape[2]
        out = torch.zeros_like(x)
        for dy in range(ky):
            rows = padded[:, :, dy : dy + height].unfold(3, kx, 1)  # (B, C, H, W, Kx), a view
            out = out + gy[..., dy].unsqueeze(1) * (rows * gx.unsqueeze(1)).sum(-1)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._input_size = tuple(x.shape[2:])
        if self.dynamic:
            x = self.dynamic_blur(x)
        elif self.covariance == "full":
            g = self.full_gaussians(self._input_size).unsqueeze(1).to(x.dtype)
            x = torch.nn.functional.conv2d(x, g, padding=g.shape[-1] // 2, groups=g.shape[0])
        else:
            for axis in range(self.dim):  # spherical sigma: a separable blur
                x = self.blur(x, axis)
        return conv_with_kernel(x, self.free_form.weight, self.free_form.bias, causal=self.causal)

    def size_parameters(self) -> list[nn.Parameter]:
        if self.dynamic:  # the regressor sets the sizes: it gets the scale parameters' lr and no decay
            return list(self.sigma_net.parameters())
        return [self.chol] if self.covariance == "full" else [self.log2_sigma]

    def kernel_sizes(self) -> float | list[float]:
        """Per dimension: mean over input channels of the composed support, (2 h + 1) + (k - 1)."""
        sizes = self._input_size or (None,) * self.dim
        if self.dynamic:  # the last forward's mean over pixels (before any: init_sigma's everywhere)
            if self._mean_sides is None:
                lo, hi = self.log2_sigma_range
                frac = torch.sigmoid(self.sigma_net.bias.detach()[:1])
                side = 2 * float(torch.ceil(2 * torch.exp2(lo + (hi - lo) * frac))) + 1
                sides = [side] * self.dim
            else:
                sides = self._mean_sides.tolist()
            sides = [v + self.kernel_size - 1 for v in sides]
            return sides[0] if self.dim == 1 else sides
        if self.covariance == "full":
            top = min(self.max_half_width, max(sizes) - 1) if sizes[0] is not None else self.max_half_width
            half = torch.ceil(2 * self.covariances().detach().diagonal(dim1=-2, dim2=-1).sqrt()).clamp(max=top)
            return [float((2 * half[:, d] + self.kernel_size).mean()) for d in range(2)]
        sides = [float((2 * self.half_widths(n) + self.kernel_size).float().mean()) for n in sizes]
        return sides[0] if self.dim == 1 else sides
