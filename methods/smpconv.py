"""SMPConv: kernel weights at learned, moving points with learned radii; their extent is the kernel's size.

Kim, Park: "SMPConv: Self-moving Point Representations for Continuous Convolution" (CVPR 2023;
code sangnekim/SMPConv, MIT). Written from the paper's formulas and the run settings of the
repository's smp/README.md, not from its code.

Every output channel o has n points with learned positions p_oi in [-1, 1]^dim (shared by its
input channels, so a point moves all of them) and learned radii r_oi; each (o, c) channel pair
has one weight w_oci per point. On CKConv's relative-position grid (methods/ckconv.py: the whole
input; causal, +1 is the present step) the kernel is the points' linear interpolation

    K_oc(x) = sum_i w_oci g_oi(x) / n_o(x),   g_oi(x) = max(0, 1 - |x - p_oi|_1 / r_oi),

averaged where n_o(x) >= 1 supports overlap (the repository's normalisation; the count has no
gradient). A point only weighs the grid within r_oi of it (an L1 diamond in 2D), so the support
moves and grows with the points: `kernel_sizes()` reports the extent the supports cover, per
axis, in taps, averaged over output channels.

Init (repository): weights N(0, 0.02^2); radii r_0; positions N(0, std^2) truncated to [-1, 1]
on images and centred sequences; on causal sequences 1 - 2|z|, z ~ N(0, std^2) truncated to
|z| <= 1, so the points start near the present. After every optimiser step the radii are
clipped to [1e-4, 1] (`post_step`). Radii train at 0.1x the learning rate, radii and positions
without weight decay (`param_groups`); both are size parameters (`size_parameters`).

Every SMPConv run adds a small dense kernel beside the points, k x k with k = 5 on sequences
and 3 on images, no bias; each branch has its own BatchNorm and the two are summed:
BN(SMP(x)) + BN(conv_k(x)). The layer therefore normalises its own output
(`normalises_output`) and the backbone puts no norm after it (`small_kernel_size=0`: the points
alone, followed by the backbone's norm). In the repository's FlexTCN-6 / FlexNet-7 nets this
gives its published sizes (tests/test_later_methods.py): sMNIST 370,960 ("371k"), sCIFAR10
373,480 ("373k"), SC MFCC 391,840 ("392k"), CIFAR-10 489,622 ("490k"; the repository's stem
gives its small conv a bias, redundant before BatchNorm, 24 parameters more).

Defaults are the repository's runs: n = 30 points on sequences, 16 on images; std 0.1 / 0.05;
the radius is one grid spacing (its runs use 0.8-2: 0.002 on 784 steps, 0.012 on 161, 0.0002 on
16,000, 0.12 on the 33-grid of CIFAR-10).
"""

from __future__ import annotations

import torch
from torch import nn

from bench.base import UserError
from methods import kernelbank, register_method
from methods.backbones import batch_norm
from methods.ckconv import horizon
from methods.functional import conv_with_kernel

RADIUS_RANGE = (1e-4, 1.0)  # the repository's clip after every step
DEFAULTS = {  # per task dim: points, position std, small kernel
    1: {"n_points": 30, "coord_std": 0.1, "small_kernel_size": 5},
    2: {"n_points": 16, "coord_std": 0.05, "small_kernel_size": 3},
}


@register_method(
    "smpconv",
    description="SMPConv: weights at learned moving points with learned radii, interpolated onto the grid, "
    "plus a small dense kernel (each branch with its BatchNorm)",
    paper="Kim, Park: SMPConv: Self-moving Point Representations for Continuous Convolution (CVPR)",
    year=2023,
    dims=(1, 2),
    causal=True,
    learned_size=True,
    kernel_size_unit="taps per dimension: extent of the points' supports (position -+ radius), mean over output channels",
    references=("SMPConv",),
)
class SMPConv(nn.Module):
    def __init__(
        self, cin: int, cout: int, *, dim: int, causal: bool, size,
        n_points: int | None = None,  # moving points per output channel; None: 30 on sequences, 16 on images
        radius: float | None = None,  # the points' radius at init; None: one grid spacing
        coord_std: float | None = None,  # std of the points' positions at init; None: 0.1 on sequences, 0.05 on images
        small_kernel_size: int | None = None,  # the small dense kernel's side (0: none); None: 5 (sequences), 3 (images)
        radius_lr_factor: float = 0.1,  # learning rate of the radii, times the base lr
        bias: bool = False,  # a bias on the output
        kernel_size: int | None = None,  # side of the grid the points are interpolated onto; None: the task's horizon
    ):  # fmt: skip
        super().__init__()
        own = DEFAULTS[dim]  # None: the repository's value for this dim
        n_points = own["n_points"] if n_points is None else n_points
        coord_std = own["coord_std"] if coord_std is None else coord_std
        small_kernel_size = own["small_kernel_size"] if small_kernel_size is None else small_kernel_size
        if causal and dim != 1:
            raise UserError("a causal SMPConv is 1D only")
        if n_points < 1 or coord_std <= 0 or (radius is not None and radius <= 0) or radius_lr_factor < 0:
            raise UserError(
                f"smpconv needs n_points >= 1, coord_std > 0, radius > 0 and radius_lr_factor >= 0; "
                f"got {n_points}, {coord_std}, {radius}, {radius_lr_factor}"
            )
        if small_kernel_size < 0 or (small_kernel_size and not causal and small_kernel_size % 2 == 0):
            raise UserError(
                f"small_kernel_size must be 0 (none) or {'>= 1' if causal else 'odd'}, got {small_kernel_size}"
            )
        self.cin, self.cout, self.dim, self.causal = cin, cout, dim, causal
        self.grid = horizon(size, dim, causal, kernel_size)
        spacing = 2.0 / max(max(self.grid) - 1, 1)
        self.radius_lr_factor = float(radius_lr_factor)
        z = nn.init.trunc_normal_(torch.empty(cout, n_points, dim), std=coord_std, a=-1.0, b=1.0)
        # causal: 1 - 2|z|, the points start at and before the present step
        self.positions = nn.Parameter(1.0 - 2.0 * z.abs() if causal else z)
        self.radius = nn.Parameter(torch.full((cout, n_points), spacing if radius is None else float(radius)))
        self.weight = nn.Parameter(torch.randn(cout, cin, n_points) * 0.02)
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.small_weight = None
        if small_kernel_size:
            small = torch.randn(cout, cin, *(small_kernel_size,) * dim) * 0.02
            self.small_weight = nn.Parameter(small)
            self.norm, self.small_norm = batch_norm(dim, cout), batch_norm(dim, cout)
        self.normalises_output = self.small_weight is not None

    def _axes(self) -> list[torch.Tensor]:
        return [torch.linspace(-1.0, 1.0, k, device=self.weight.device, dtype=self.weight.dtype) for k in self.grid]

    def sample_kernel(self) -> torch.Tensor:
        """The points' kernel on the grid, shape (C_out, C_in, k_1, ..., k_dim)."""
        # |x - p|_1 summed over the axes by broadcasting: (C_out, n, k_1, ..., k_dim)
        dist = 0
        for d, axis in enumerate(self._axes()):
            shape = [1] * self.dim
            shape[d] = -1
            dist = dist + (self.positions[..., d, None] - axis).abs().view(*self.positions.shape[:2], *shape)
        g = torch.relu(1.0 - dist / self.radius.view(*self.radius.shape, *[1] * self.dim)).flatten(2)
        g = g / (g > 0).sum(1, keepdim=True).clamp(min=1)  # average where supports overlap
        return torch.bmm(self.weight, g).view(self.cout, self.cin, *self.grid)

    def batch_key(self):
        """Layers with equal keys sample their kernels in one batched call (methods/kernelbank.py)."""
        return (self.grid, self.dim, self.radius.shape[1], self.weight.device, self.weight.dtype)

    @staticmethod
    def sample_together(layers: list[SMPConv]) -> list[torch.Tensor]:
        """`sample_kernel()` of every layer (equal batch keys): the points' supports of all layers' output
        channels in one evaluation, each layer's weights in one batched product per weight shape."""
        first = layers[0]
        positions = kernelbank.cat([layer.positions for layer in layers])  # (sum C_out, n, dim)
        radius = kernelbank.cat([layer.radius for layer in layers])
        dist = 0
        for d, axis in enumerate(first._axes()):
            shape = [1] * first.dim
            shape[d] = -1
            dist = dist + (positions[..., d, None] - axis).abs().view(*positions.shape[:2], *shape)
        g = torch.relu(1.0 - dist / radius.view(*radius.shape, *[1] * first.dim)).flatten(2)
        g = g / (g > 0).sum(1, keepdim=True).clamp(min=1)  # (sum C_out, n, taps)
        parts = g.split([layer.cout for layer in layers])
        return [torch.bmm(layer.weight, part).view(layer.cout, layer.cin, *layer.grid) for layer, part in
                zip(layers, parts)]  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in the network's forward, the kernel comes from one batched call for all its SMPConv layers
        y = conv_with_kernel(x, kernelbank.kernel_of(self), self.bias, causal=self.causal)
        if self.small_weight is None:
            return y
        return self.norm(y) + self.small_norm(conv_with_kernel(x, self.small_weight, None, causal=self.causal))

    # -- hooks (methods/hooks.py) --------------------------------------------------
    def kernel_sizes(self) -> float | list[float]:
        """Per axis: taps from the lowest to the highest point support (p -+ r), mean over output channels."""
        p, r = self.positions.detach(), self.radius.detach().unsqueeze(-1)
        lo, hi = (p - r).amin(1).clamp(-1.0, 1.0), (p + r).amax(1).clamp(-1.0, 1.0)  # (C_out, dim)
        sizes = []
        for d, k in enumerate(self.grid):
            taps = (hi[:, d] - lo[:, d]).clamp(min=0) * (k - 1) / 2.0 + 1.0
            sizes.append(float(taps.clamp(max=k).mean()))
        return sizes[0] if self.dim == 1 else sizes

    def param_groups(self, base_lr: float) -> list[dict]:
        return [
            {"params": [self.radius], "lr": self.radius_lr_factor * base_lr, "weight_decay": 0.0},
            {"params": [self.positions], "lr": base_lr, "weight_decay": 0.0},
        ]

    def size_parameters(self) -> list[nn.Parameter]:
        return [self.positions, self.radius]

    def post_step(self) -> None:
        with torch.no_grad():
            self.radius.clamp_(*RADIUS_RANGE)

    def extra_repr(self) -> str:
        small = self.small_weight.shape[-1] if self.small_weight is not None else 0
        return f"{self.cin}, {self.cout}, points={self.positions.shape[1]}, grid={self.grid}, small={small}, causal={self.causal}"
