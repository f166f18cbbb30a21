"""Deformable convolution v2 (Zhu et al., CVPR 2019) through torchvision.ops.deform_conv2d.

y(p) = sum_k w_k * x(p + p_k + dp_k(x)) * m_k(x): a k x k conv whose taps are moved by
offsets dp and scaled by a modulation m, both predicted from the input by a k x k conv,
with bilinear sampling at fractional positions. The offset conv starts at zero and the
modulation is 2 * sigmoid(.), so the layer starts as exactly the plain conv with its weights
(the v2 paper starts the modulation at 0.5 instead; 1 keeps the plain-conv start exact).
1D runs as a height-1 image with vertical offsets fixed at zero. Not causal: the offsets
can point anywhere, including the future.

On CUDA the layer runs torchvision.ops.deform_conv2d. Its CPU kernel is 6-7x slower than the
same sampling done with F.grid_sample (forward + backward, 64 x 16 x {8, 16, 32}^2, one
thread: 87 / 339 / 1374 ms against 13 / 52 / 229 ms; a 3 x 3 conv takes 1.5 / 4.9 / 17 ms),
too slow for the quick suite, so on CPU the layer samples with grid_sample instead; the two
agree in value and gradient, zero offsets included (tests/test_other_methods.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from methods import register_method


def deform_conv2d_sampled(x, offset, weight, bias, padding: tuple[int, int], mask) -> torch.Tensor:
    """torchvision's deform_conv2d (stride 1, dilation 1, one offset group) through F.grid_sample.

    Tap k of output (i, j) reads x bilinearly at (i + ky - pad_h + dy, j + kx - pad_w + dx),
    zero outside the image, times mask; the taps are then contracted with the weights.
    """
    b, _, h, w = x.shape
    cout, cin, kh, kw = weight.shape
    taps = kh * kw
    # Zero-pad the input to power-of-two sides: grid_sample's coordinate normalisation is then
    # exact, so integer positions (zero offsets) stay integers and the offset gradient there is
    # torchvision's one-sided one, not whichever side rounding picks; the padding reads as zeros.
    ph, pw = 1 << (h - 1).bit_length(), 1 << (w - 1).bit_length()
    x = F.pad(x, (0, pw - w, 0, ph - h))
    offset = offset.view(b, taps, 2, h, w)
    ky, kx = torch.meshgrid(torch.arange(kh) - padding[0], torch.arange(kw) - padding[1], indexing="ij")
    rows = torch.arange(h, dtype=x.dtype, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, dtype=x.dtype, device=x.device).view(1, 1, 1, w)
    ys = rows + ky.reshape(1, taps, 1, 1).to(x) + offset[:, :, 0]
    xs = cols + kx.reshape(1, taps, 1, 1).to(x) + offset[:, :, 1]
    # align_corners=False puts pixel centres at (2 i + 1) / n - 1
    grid = torch.stack([(2 * xs + 1) / pw - 1, (2 * ys + 1) / ph - 1], dim=-1).view(b, taps * h, w, 2)
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.view(b, cin, taps, h, w) * mask.view(b, 1, taps, h, w)
    # (cout, cin * taps) @ (b, cin * taps, h * w), both in (channel, tap) order; bmm on the
    # expanded weight avoids the copy of `sampled` that matmul's batch folding makes
    kernel = weight.reshape(1, cout, cin * taps).expand(b, -1, -1)
    y = torch.bmm(kernel, sampled.view(b, cin * taps, h * w)).view(b, cout, h, w)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


@register_method(
    "deformable",
    description="deformable conv v2: 3x3 taps moved by input-predicted offsets and modulated (torchvision op)",
    paper="Zhu, Hu, Lin, Dai: Deformable ConvNets v2 (CVPR)",
    year=2019,
    dims=(1, 2),
    causal=False,
    deterministic_cuda=False,
    learned_size=True,
    kernel_size_unit="pixels: mean offset length |dp| over taps and positions on the last eval batch (0 = plain conv)",
)
class DeformableConv(nn.Module):
    def __init__(
        self, cin: int, cout: int, *, dim: int, causal: bool = False, size=None,
        kernel_size: int = 3,  # taps per side (odd)
        offset_lr_factor: float = 0.1,  # learning rate of the offset branch, times the base lr
    ):  # fmt: skip
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"deformable needs an odd kernel_size, got {kernel_size}")
        # v1 trained the offset branch at 0.1x the base lr (methods.md 5, pitfalls), under weight decay
        self.dim, self.size_lr_factor, self.size_weight_decay = dim, offset_lr_factor, True
        sides = (kernel_size, kernel_size) if dim == 2 else (1, kernel_size)
        self.taps = sides[0] * sides[1]
        # holds the (k x k, or 1 x k) weights; with zero offsets the layer computes this conv
        self.conv = nn.Conv2d(cin, cout, sides, padding=(sides[0] // 2, sides[1] // 2))
        self.moving_axes = dim  # offsets per tap: (dy, dx) in 2D, dx only in 1D
        predictor = nn.Conv2d if dim == 2 else nn.Conv1d
        self.offset = predictor(cin, (self.moving_axes + 1) * self.taps, kernel_size, padding=kernel_size // 2)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self._mean_offset: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pred = self.offset(x)
        offset, mask = pred.split([self.moving_axes * self.taps, self.taps], dim=1)
        if self.dim == 1:  # torchvision wants (dy, dx) per tap, interleaved; rows cannot move in 1D
            offset = torch.stack([torch.zeros_like(offset), offset], dim=2).flatten(1, 2)
            x, offset, mask = x.unsqueeze(2), offset.unsqueeze(2), mask.unsqueeze(2)
        if not self.training:  # the statistic kernel_sizes() reports, from evaluation batches only (it costs)
            b, _, h, w = offset.shape
            dy, dx = offset.detach().view(b, self.taps, 2, h, w).unbind(2)  # (a norm over dim 2 is 30x slower)
            self._mean_offset = (dy.square() + dx.square()).sqrt().mean()
        mask = 2 * torch.sigmoid(mask)
        sample = deform_conv2d if x.is_cuda else deform_conv2d_sampled
        y = sample(x, offset, self.conv.weight, self.conv.bias, padding=self.conv.padding, mask=mask)
        return y.squeeze(2) if self.dim == 1 else y

    def size_parameters(self) -> list[nn.Parameter]:
        """The offset/modulation branch: it decides where the taps read, not how they are weighted."""
        return list(self.offset.parameters())

    def kernel_sizes(self) -> float:
        """Mean length |dp| of the taps' offsets, in pixels (steps), on the last batch seen in eval mode; 0 before any."""
        return 0.0 if self._mean_offset is None else float(self._mean_offset)
