"""RFNN (N-Jet with the scale frozen) and Shelhamer et al.'s blur + conv with a full covariance."""

from __future__ import annotations

import math

import pytest
import torch

import methods
from methods import hooks
from methods.njet import NJetConv
from methods.srf import GaussianBlurConv


def layer(name, cin, cout, dim, causal, size, **hp):
    return methods.get_method(name).obj(cin, cout, dim=dim, causal=causal, size=size, **hp)


def test_rfnn_is_njet_with_the_scale_frozen():
    torch.manual_seed(0)
    rf = layer("rfnn", 3, 5, 2, False, 20)
    assert "log2_sigma" in dict(rf.named_buffers()) and "log2_sigma" not in dict(rf.named_parameters())
    assert rf.kernel_sizes() == [11.0, 11.0]  # order 3 at sigma 1.5, k = 3: the MNIST net's 11 x 11
    nj = NJetConv(3, 5, dim=2, causal=False, order=3, k=3.0, init_sigma=1.5)
    nj.load_state_dict(rf.state_dict())
    x = torch.randn(2, 3, 20, 20)
    torch.testing.assert_close(rf(x), nj(x))  # the same basis and weights: the same layer
    # training moves the weights over the basis, never the basis
    opt = torch.optim.SGD([g for g in hooks.param_groups(rf, 0.1, 0.0)], lr=0.1)
    basis = rf.basis([5, 5]).clone()
    rf(x).square().mean().backward()
    opt.step()
    assert torch.equal(rf.basis([5, 5]), basis) and rf.size_parameters() == []
    assert not methods.card_of("rfnn").learned_size and methods.card_of("njet").learned_size


def test_rfnn_support_scales_with_resolution():
    rf = layer("rfnn", 1, 1, 1, True, 64, sigma=1.0, k=2.0)
    assert rf.kernel_sizes() == 7.0
    rf.change_resolution(2.0)
    assert rf.kernel_sizes() == 2 * math.ceil(2 * 2.0 + 0.5) + 1


def test_full_covariance_at_a_spherical_sigma_is_the_spherical_blur():
    torch.manual_seed(0)
    sph = GaussianBlurConv(3, 4, dim=2, causal=False, init_sigma=1.3)
    full = GaussianBlurConv(3, 4, dim=2, causal=False, init_sigma=1.3, covariance="full", max_half_width=6)
    full.free_form.load_state_dict(sph.free_form.state_dict())
    x = torch.randn(2, 3, 15, 13)
    torch.testing.assert_close(full(x), sph(x), rtol=1e-5, atol=1e-6)
    assert full.kernel_sizes() == pytest.approx(sph.kernel_sizes())


def test_full_covariance_is_anisotropic_rotated_and_learned():
    torch.manual_seed(0)
    full = GaussianBlurConv(2, 2, dim=2, causal=False, covariance="full", max_half_width=12)
    with torch.no_grad():  # L = [[e^a, 0], [c, e^b]]: Sigma = [[e^2a, c e^a], [c e^a, c^2 + e^2b]]
        full.chol.copy_(torch.tensor([[math.log(2.0), math.log(0.8), 1.5], [0.0, 0.0, 0.0]]))
    cov = full.covariances()
    torch.testing.assert_close(cov[0], torch.tensor([[4.0, 3.0], [3.0, 2.25 + 0.64]]))
    g = full.full_gaussians((40, 40))
    assert g.shape == (2, 25, 25) and torch.allclose(g.sum((1, 2)), torch.ones(2))
    x = torch.arange(-12, 13, dtype=torch.float32)
    pos = torch.stack(torch.meshgrid(x, x, indexing="ij"), -1)
    mean_xy = (g[0, :, :, None, None] * pos[:, :, :, None] * pos[:, :, None, :]).sum((0, 1))
    assert mean_xy[0, 1] > 1.5 and mean_xy[0, 0] > mean_xy[1, 1]  # rotated (x and y correlate), anisotropic
    assert torch.linalg.matrix_rank(g[0]) > 1  # not separable, unlike the spherical blur
    assert torch.linalg.matrix_rank(g[1], atol=1e-6) == 1  # Sigma = I: separable
    full(torch.randn(1, 2, 16, 16)).square().sum().backward()
    assert full.chol.grad.abs().sum() > 0 and full.size_parameters() == [full.chol]


def test_full_covariance_is_refused_where_it_does_not_apply():
    from bench.base import UserError

    with pytest.raises(UserError):
        GaussianBlurConv(1, 1, dim=1, causal=False, covariance="full")
    with pytest.raises(UserError):
        GaussianBlurConv(1, 1, dim=2, causal=False, covariance="diagonal")
