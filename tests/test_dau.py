"""DAU (methods/dau.py) against the authors' computation written out: blur once, shift by each unit's
displacement with bilinear interpolation, accumulate the weighted shifted maps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import methods
from methods.dau import DAUConv


@torch.no_grad()
def blur_and_shift_reference(layer: DAUConv, x: torch.Tensor) -> torch.Tensor:
    """out_o(t) = b_o + sum_{c,k} w_ock * bilinear(G * x_c)(t + mu_ock), zero outside the image (2D)."""
    B, C, H, W = x.shape
    M = layer.K // 2 + layer.h + 2  # margin: the blurred map beyond the image is not zero
    xp = F.pad(x.double(), (M, M, M, M))
    g = layer.gaussian().double()
    G = (g[:, None] * g[None, :])[None, None].repeat(C, 1, 1, 1)
    blurred = F.conv2d(xp, G, padding=layer.h, groups=C)  # (B, C, H + 2M, W + 2M)
    out = layer.bias.double().view(1, -1, 1, 1).repeat(B, 1, H, W)
    for o in range(layer.mu.shape[0]):
        for c in range(C):
            for k in range(layer.units):
                my, mx = (float(v) for v in layer.mu[o, c, k])
                y0, x0 = math.floor(my), math.floor(mx)
                fy, fx = my - y0, mx - x0
                acc = 0
                for dy, wy in ((0, 1 - fy), (1, fy)):
                    for dx, wx in ((0, 1 - fx), (1, fx)):
                        ys, xs = M + y0 + dy, M + x0 + dx
                        acc = acc + wy * wx * blurred[:, c, ys : ys + H, xs : xs + W]
                out[:, o] += float(layer.weight[o, c, k]) * acc
    return out


@pytest.mark.parametrize("sigma,K", [(0.5, 9), (1.2, 7)])
def test_dense_kernel_equals_blur_then_bilinear_shifts(sigma, K):
    torch.manual_seed(0)
    layer = DAUConv(3, 2, dim=2, units=4, max_kernel_size=K, sigma=sigma)
    with torch.no_grad():  # displacements off the grid, of both signs and up to the clip
        layer.mu.uniform_(-layer.mu_bound, layer.mu_bound)
        layer.bias.normal_()
    x = torch.randn(2, 3, 11, 10)
    torch.testing.assert_close(layer(x).double(), blur_and_shift_reference(layer, x), rtol=1e-4, atol=1e-5)


def test_units_are_normalised_blobs_and_grow_the_receptive_field():
    layer = DAUConv(1, 1, dim=2, units=4, max_kernel_size=13, sigma=0.5)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.mu.copy_(torch.tensor([[[[-1.5, -1.5], [-1.5, 1.5], [1.5, -1.5], [1.5, 1.5]]]]))
    kernel = layer.dense_kernel()[0, 0].detach()
    assert float(kernel.sum()) == pytest.approx(4.0, rel=1e-5)  # each unit sums to 1 (unit normalisation)
    small = layer.kernel_sizes()
    with torch.no_grad():
        layer.mu.mul_(3.0)  # units apart: the same 4 blobs, a wider field
    assert layer.kernel_sizes() == pytest.approx([small[0] + 6, small[1] + 6])  # spans 3 -> 9 taps
    assert float(layer.dense_kernel()[0, 0].detach().sum()) == pytest.approx(4.0, rel=1e-5)
    layer.mu.data.fill_(100.0)
    layer.post_step()
    assert float(layer.mu.detach().max()) == pytest.approx(13 // 2 - 0.01)


def test_displacements_and_weights_learn_sigma_fixed_unless_asked():
    torch.manual_seed(1)
    layer = methods.get_method("dau").obj(2, 3, dim=2, causal=False, size=12)
    assert "log_sigma" in dict(layer.named_buffers()) and layer.size_parameters() == [layer.mu]
    layer(torch.randn(2, 2, 12, 12)).square().sum().backward()
    assert layer.mu.grad.abs().sum() > 0 and layer.weight.grad.abs().sum() > 0
    learned = methods.get_method("dau").obj(2, 3, dim=2, causal=False, size=12, learn_sigma=True)
    learned(torch.randn(2, 2, 12, 12)).square().sum().backward()
    assert learned.log_sigma.grad.abs() > 0
    one_d = methods.get_method("dau").obj(2, 3, dim=1, causal=False, size=16)
    assert one_d(torch.randn(2, 2, 16)).shape == (2, 3, 16)
