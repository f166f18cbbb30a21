"""RFNN (N-Jet with the scale frozen) and Shelhamer et al.'s blur + conv with a full covariance."""

from __future__ import annotations

import math

import pytest
import torch

import methods
from bench.base import UserError
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
    with pytest.raises(UserError):
        GaussianBlurConv(1, 1, dim=1, causal=False, covariance="full")
    with pytest.raises(UserError):
        GaussianBlurConv(1, 1, dim=2, causal=False, covariance="diagonal")


def explicit_derivatives(sigma: float, h: int) -> torch.Tensor:
    """sigma^n d^n G / dx^n, n = 0..3, of the Gaussian normalised on -h..h, written out by hand: (4, 2h + 1)."""
    x = torch.arange(-h, h + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    u = x / sigma
    return torch.stack([g, -u * g, (u**2 - 1) * g, (-(u**3) + 3 * u) * g])


@pytest.mark.parametrize("causal", [False, True])
def test_rfnn_with_several_scales_is_a_conv_with_the_combined_multiscale_basis(causal):
    torch.manual_seed(0)
    sigma0, k, scales = 0.5, 2.0, 3  # sigma 0.5, 1, 2: half-widths 2, 3, 5
    dim = 1 if causal else 2
    rf = layer("rfnn", 3, 4, dim, causal, 24, order=3, k=k, sigma=sigma0, scales=scales)
    F = 4 if dim == 1 else 10
    assert rf.alpha.shape == (4, 3, scales * F)  # frozen basis of 3 * F filters, learned weights over it
    assert sorted(rf.state_dict()) == ["alpha", "bias", "log2_sigma"]
    top = math.ceil(k * sigma0 * 2 ** (scales - 1) + 0.5)
    basis = []
    for i in range(scales):
        h = math.ceil(k * sigma0 * 2**i + 0.5)
        d = torch.nn.functional.pad(explicit_derivatives(sigma0 * 2**i, h), (top - h, top - h))
        if dim == 1:
            basis += list(d)
        else:  # (i, j) with i + j <= 3, by total order, i (the first axis) descending
            basis += [d[a][:, None] * d[t - a][None, :] for t in range(4) for a in range(t, -1, -1)]
    basis = torch.stack(basis)  # (scales * F, K...)
    kernel = torch.einsum("ocf,f...->oc...", rf.alpha.double(), basis).float()
    x = torch.randn(2, 3, *([24] * dim))
    if causal:
        expected = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (2 * top, 0)), kernel, rf.bias)
    else:
        expected = torch.nn.functional.conv2d(x, kernel, rf.bias, padding=top)
    torch.testing.assert_close(rf(x), expected, rtol=1e-4, atol=1e-5)
    assert rf.kernel_sizes() == (2 * top + 1.0 if dim == 1 else [2 * top + 1.0] * 2)
    # one scale per layer (the default) keeps the one-scale basis
    one = layer("rfnn", 3, 4, dim, causal, 24, order=3, k=k, sigma=sigma0)
    assert one.alpha.shape == (4, 3, F) and one.kernel_sizes() == (5.0 if dim == 1 else [5.0, 5.0])
    with pytest.raises(UserError):
        layer("rfnn", 1, 1, dim, causal, 24, scales=0)


def test_rfnn_several_scales_in_a_model_train_save_and_reload():
    """The multi-scale basis goes through the network's batched kernel sampling, changes resolution, and reloads."""
    import io

    from methods import TaskSpec

    task = TaskSpec(dim=2, in_channels=3, num_classes=4, size=(12, 14))
    torch.manual_seed(0)
    model = methods.build_model("rfnn", task, width=4, dropout=0.0, scales=2, sigma=0.5, k=2.0)
    x = torch.randn(2, 3, 12, 14)
    out = model(x)
    assert out.shape == (2, 4)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)
    sizes = hooks.kernel_sizes(model)
    assert sizes and all(s == [7.0, 7.0] for s in sizes.values())  # sigma 1 at k 2: half-width 3
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(1)
    fresh = methods.build_model("rfnn", task, width=4, dropout=0.0, scales=2, sigma=0.5, k=2.0)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    assert hooks.change_resolution(model, 2.0) > 0
    assert model(torch.randn(2, 3, 24, 28)).shape == (2, 4)
    assert all(s == [11.0, 11.0] for s in hooks.kernel_sizes(model).values())  # sigma 2 at k 2: half-width 5
