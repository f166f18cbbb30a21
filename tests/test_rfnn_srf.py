"""RFNN (N-Jet with the scale frozen) and Shelhamer et al.'s blur + conv with a full covariance."""

from __future__ import annotations

import io
import math

import pytest
import torch

import methods
from bench.base import UserError
from bench.cost import ops_per_step as ops
from bench.run.config import TrainConfig
from bench.run.protocol import TrainStep, make_optimizer
from methods import TaskSpec, hooks
from methods.njet import NJetConv
from methods.srf import GaussianBlurConv
from tests.test_methods_conformance import TASKS, assert_causal, inputs, perturb_after, sequence_outputs
from tests.test_save_reload import train_a_little


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


def slow_dynamic_reference(lay: GaussianBlurConv, x: torch.Tensor) -> torch.Tensor:
    """Shelhamer's dynamic blur + conv, one pixel at a time: each pixel's 2D Gaussian built on its own and applied."""
    lo, hi = math.log2(0.25), math.log2(lay.max_half_width / 2)
    raw = torch.nn.functional.conv2d(x, lay.sigma_net.weight, lay.sigma_net.bias, padding=1)
    sigma = 2 ** (lo + (hi - lo) * torch.sigmoid(raw))  # (B, 1 or 2, H, W)
    B, C, H, W = x.shape
    top = [min(lay.max_half_width, n - 1) for n in (H, W)]
    padded = torch.nn.functional.pad(x, (top[1], top[1], top[0], top[0]))
    dy = torch.arange(-top[0], top[0] + 1, dtype=x.dtype)[:, None]
    dx = torch.arange(-top[1], top[1] + 1, dtype=x.dtype)[None, :]
    rows = []
    for b in range(B):
        for i in range(H):
            for j in range(W):
                sy, sx = sigma[b, 0, i, j], sigma[b, -1, i, j]
                inside = (dy.abs() <= math.ceil(2 * sy.item())) & (dx.abs() <= math.ceil(2 * sx.item()))
                g = torch.exp(-(dy**2) / (2 * sy**2) - dx**2 / (2 * sx**2)) * inside
                g = g / g.sum()
                window = padded[b, :, i : i + 2 * top[0] + 1, j : j + 2 * top[1] + 1]
                rows.append((window * g).sum((1, 2)))
    blurred = torch.stack(rows).view(B, H, W, C).permute(0, 3, 1, 2)
    return torch.nn.functional.conv2d(blurred, lay.free_form.weight, lay.free_form.bias, padding=1)


@pytest.mark.parametrize("covariance", ["spherical", "diagonal"])
def test_dynamic_covariance_blurs_each_pixel_with_its_own_gaussian(covariance):
    torch.manual_seed(0)
    lay = GaussianBlurConv(2, 3, dim=2, causal=False, dynamic=True, covariance=covariance, max_half_width=3)
    with torch.no_grad():  # a regressor that does vary sigma over the image (its init is constant)
        lay.sigma_net.weight.normal_(0, 1.0)
    x = torch.randn(2, 2, 7, 6, requires_grad=True)
    sigma = lay.pixel_sigmas(x)
    assert sigma.shape == (2, 2 if covariance == "diagonal" else 1, 7, 6)
    assert sigma.min() < 0.6 and sigma.max() > 1.2  # per pixel: several supports on one image
    if covariance == "diagonal":
        assert (sigma[:, 0] - sigma[:, 1]).abs().max() > 0.3
    got = lay(x)
    expected = slow_dynamic_reference(lay, x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the gradient reaches the regressor (and the input), and is the reference's
    w = torch.randn_like(got)
    grads = torch.autograd.grad((got * w).sum(), [lay.sigma_net.weight, lay.sigma_net.bias, x])
    ref = torch.autograd.grad((expected * w).sum(), [lay.sigma_net.weight, lay.sigma_net.bias, x])
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert lay.size_parameters() == [lay.sigma_net.weight, lay.sigma_net.bias]


def test_dynamic_covariance_starts_as_the_static_blur():
    """At init the regressor predicts init_sigma everywhere: the static spherical layer's output."""
    torch.manual_seed(0)
    static = GaussianBlurConv(3, 4, dim=2, causal=False, init_sigma=1.3)
    dyn = GaussianBlurConv(3, 4, dim=2, causal=False, init_sigma=1.3, dynamic=True)
    dyn.free_form.load_state_dict(static.free_form.state_dict())
    x = torch.randn(2, 3, 13, 11)
    torch.testing.assert_close(dyn(x), static(x), rtol=1e-5, atol=1e-6)
    assert dyn.kernel_sizes() == pytest.approx(static.kernel_sizes())  # 2 ceil(2.6) + 1 + 2 = 9
    assert "log2_sigma" not in dict(dyn.named_parameters()) and dyn.host_tensors() == []
    with pytest.raises(UserError):
        GaussianBlurConv(1, 1, dim=2, causal=False, dynamic=True, covariance="full")
    with pytest.raises(UserError):  # sigma must fit the grid of max_half_width: sigma <= 2
        GaussianBlurConv(1, 1, dim=2, causal=False, dynamic=True, init_sigma=2.5)


DYNAMIC_TASKS = ["1d", "1d-causal", "2d"]


@pytest.mark.parametrize("key", DYNAMIC_TASKS)
def test_dynamic_covariance_in_a_model_conforms(key):
    """The registry's conformance checks for srf_gauss with dynamic=True: shapes, gradients to every parameter,
    seed, causality of every per-step feature, state_dict reload, no host read in a training step."""
    task = TASKS[key]

    def build(seed):
        torch.manual_seed(seed)
        return methods.build_model("srf_gauss", task, width=4, dropout=0.0, dynamic=True)

    x = inputs(task)
    model = build(3).train()
    out = model(x)
    assert out.shape == (x.shape[0], task.num_classes) and torch.isfinite(out).all()
    assert torch.equal(build(3).train()(x), out) and not torch.equal(build(5).train()(x), out)
    out.square().sum().backward()
    dead = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    assert not dead and any("sigma_net" in n for n, _ in model.named_parameters())
    sizes = [v for s in hooks.kernel_sizes(model).values() for v in (s if isinstance(s, list) else [s])]
    assert sizes and all(math.isfinite(v) and v > 0 for v in sizes)
    if task.causal:
        model.eval()
        with torch.no_grad():  # sigma that varies with the input (at init it is constant), so the regressor counts
            for m in model.modules():
                if isinstance(m, GaussianBlurConv):
                    m.sigma_net.weight.normal_(0, 1.0)
        t = task.size // 2
        x2 = perturb_after(x, t)
        with torch.no_grad():
            for before, after in zip(sequence_outputs(model, x), sequence_outputs(model, x2)):
                assert_causal(before, after, t, "a per-step feature")
    # save, reload into a fresh build: the same predictions
    train_a_little(model, x)
    model.eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = build(1)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    # a training step reads nothing back to the host
    tc = TrainConfig(lr=1e-3)
    model = build(0).train()
    step = TrainStep(model, make_optimizer(model, tc), tc, "cpu", task.metric)
    y = torch.randint(0, task.num_classes, (x.shape[0],))
    step(x, y)
    with ops.HostReads() as reads:
        step.update(x, y)
    assert sum(reads.reads.values()) == 0, reads.reads
