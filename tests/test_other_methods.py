"""Method-specific checks for N-Jet, DCN-sigma, DCLS, deformable, SRF, dilated, the ResNets and the TCN."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

import methods
from methods import TaskSpec, hooks
from methods.dcls import DclsConv
from methods.dcn import DCNSigmaConv
from methods.deformable import DeformableConv, deform_conv2d_sampled
from methods.njet import NJetConv, gaussian_derivatives
from methods.srf import GaussianBlurConv
from methods.tcn import levels_to_cover, receptive_field


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: more OpenMP threads only wait on each other (100x slower on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def set_sigma(layer: nn.Module, sigma: float) -> None:
    with torch.no_grad():
        layer.log2_sigma.fill_(math.log2(sigma))


# -- N-Jet -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma,side", [(1.0, 7), (2.0, 11), (4.0, 19), (0.3, 5)])
def test_njet_support_grows_with_sigma(sigma, side):
    """Half-width ceil(k sigma + 0.5) with k = 2 (not 2 ceil(k sigma) + 1)."""
    layer = NJetConv(2, 3, dim=2, causal=False)
    set_sigma(layer, sigma)
    layer(torch.randn(1, 2, 40, 40))
    assert layer.kernel_sizes() == [side, side]
    assert layer.basis(layer.half_widths((40, 40))).shape == (15, side, side)  # i + j <= 4


def test_njet_support_is_capped_at_the_input_size():
    layer = NJetConv(2, 3, dim=2, causal=False)
    set_sigma(layer, 4.0)  # 19 x 19 uncapped
    y = layer(torch.randn(1, 2, 6, 30))
    assert y.shape == (1, 3, 6, 30)
    assert layer.kernel_sizes() == [11, 19]  # half-width at most 5 on the 6-pixel axis


def test_njet_basis_is_the_scale_normalised_gaussian_derivatives():
    """Hermite form against autograd derivatives of the (renormalised) sampled Gaussian."""
    sigma = torch.tensor(1.7, dtype=torch.float64)
    basis = gaussian_derivatives(sigma, half_width=4, order=4)
    assert basis.shape == (5, 9)
    x = torch.arange(-4.0, 5.0, dtype=torch.float64, requires_grad=True)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    derivs = [g / g.detach().sum()]
    for _ in range(4):
        derivs.append(torch.autograd.grad(derivs[-1].sum(), x, create_graph=True)[0])
    expected = torch.stack([d * sigma**n for n, d in enumerate(derivs)])
    torch.testing.assert_close(basis, expected.detach())
    assert basis[0].sum().item() == pytest.approx(1.0)


def test_njet_sigma_hooks():
    layer = NJetConv(2, 3, dim=1, causal=False, sigma_reg=0.5)
    (group,) = hooks.own_groups(layer, base_lr=1e-2)
    assert group["params"] == [layer.log2_sigma] and group["lr"] == pytest.approx(1e-3)
    assert group["weight_decay"] == 0.0
    reg = layer.regularization_loss()
    reg.backward()  # unlike the reference's `.item()`, the penalty has a gradient
    assert reg.item() == pytest.approx(0.5) and layer.log2_sigma.grad.item() > 0
    layer.change_resolution(2.0)
    layer(torch.randn(1, 2, 50))
    assert layer.kernel_sizes() == 11  # sigma 1 -> 2
    layer.change_resolution(1.0)  # relative to the training resolution, not cumulative
    assert layer.kernel_sizes() == 7


def test_njet_sigma_learns():
    """A few Adam steps move sigma towards a wider target filter: the size is learned."""
    torch.manual_seed(0)
    layer = NJetConv(1, 1, dim=1, causal=False, order=0, sigma_lr_factor=1.0)
    target = NJetConv(1, 1, dim=1, causal=False, order=0, init_sigma=3.0)
    target.alpha.data = layer.alpha.data.clone()
    x = torch.randn(8, 1, 64)
    opt = torch.optim.Adam(hooks.param_groups(layer, 0.05, 0.0))
    for _ in range(60):
        opt.zero_grad()
        F.mse_loss(layer(x), target(x).detach()).backward()
        opt.step()
    assert layer.sigma().item() > 2.0 and layer.kernel_sizes() >= 13


# -- DCN-sigma ----------------------------------------------------------------------------------


def test_dcn_sigma_one_scale_per_channel_pair_in_a_fixed_window():
    layer = DCNSigmaConv(3, 4, dim=2, causal=False)
    assert layer.log2_sigma.shape == (4, 3) and layer.alpha.shape == (4, 3, 6)
    assert layer.weight().shape == (4, 3, 7, 7)
    with torch.no_grad():
        layer.log2_sigma.fill_(5.0)  # sigma = 32 still lives in the 7 x 7 window
    assert layer.weight().shape == (4, 3, 7, 7) and layer.kernel_sizes() == 7.0
    with torch.no_grad():
        layer.log2_sigma.fill_(-1.0)
    assert layer.kernel_sizes() == pytest.approx(3.0)  # 4 * 0.5 + 1
    assert DCNSigmaConv(3, 4, dim=1, causal=True).weight().shape == (4, 3, 7)


# -- DCLS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_dcls_positions_stay_in_range_after_post_step(causal):
    layer = DclsConv(2, 3, dim=1, causal=causal, dilated_size=9)
    low, high = (-8, 0) if causal else (-4, 4)
    with torch.no_grad():
        layer.positions.mul_(100)
    layer.post_step()
    assert layer.positions.min() >= low and layer.positions.max() <= high
    assert layer.positions.detach().abs().max() > 3  # clamped, not reset
    layer(torch.randn(1, 2, 20)).sum().backward()
    assert torch.isfinite(layer.positions.grad).all()


def test_dcls_places_each_element_at_its_position():
    """The narrowest Gaussian (width 0.27) at an integer position puts the element's weight on that tap."""
    layer = DclsConv(1, 1, dim=2, causal=False, kernel_count=2, dilated_size=7)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[[1.0, -2.0]]]))
        layer.positions.copy_(torch.tensor([[[[2.0, -3.0]]], [[[-1.0, 0.0]]]]))  # (y, x) of each element
        layer.sig.zero_()
    kernel = layer.weight_dense()[0, 0]
    expected = torch.zeros(7, 7)
    expected[3 + 2, 3 - 1] = 1.0
    expected[3 - 3, 3 + 0] = -2.0
    torch.testing.assert_close(kernel, expected, atol=2 * 2e-3, rtol=1e-2)  # neighbours get exp(-0.5 / 0.27^2) = 1e-3
    assert layer.kernel_sizes() == [6.0, 2.0]  # spans of the positions + 1


# -- deformable ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2])
def test_deformable_with_zero_offsets_is_the_plain_conv(dim):
    torch.manual_seed(0)
    layer = DeformableConv(3, 4, dim=dim)
    x = torch.randn(2, 3, *((20,) if dim == 1 else (8, 10)))
    weight = layer.conv.weight.squeeze(2) if dim == 1 else layer.conv.weight
    plain = (F.conv1d if dim == 1 else F.conv2d)(x, weight, layer.conv.bias, padding=1)
    torch.testing.assert_close(layer.eval()(x), plain, atol=1e-5, rtol=1e-5)
    assert layer._mean_offset is not None and layer.kernel_sizes() == 0.0


@pytest.mark.parametrize("dim", [1, 2])
def test_deformable_offsets_move_the_taps(dim):
    """An offset of +1 along the last axis samples one step further: the conv of the shifted input."""
    torch.manual_seed(0)
    layer = DeformableConv(3, 4, dim=dim)
    x = torch.randn(2, 3, *((20,) if dim == 1 else (8, 10)))
    with torch.no_grad():  # 1D offsets: dx per tap; 2D: (dy, dx) per tap
        if dim == 1:
            layer.offset.bias[:3] = 1.0
        else:
            layer.offset.bias[1:18:2] = 1.0
    y = layer.eval()(x)
    if dim == 1:
        shifted = F.conv1d(F.pad(x, (0, 2)), layer.conv.weight.squeeze(2), layer.conv.bias)
    else:
        shifted = F.conv2d(F.pad(x, (0, 2, 1, 1)), layer.conv.weight, layer.conv.bias)
    torch.testing.assert_close(y, shifted, atol=1e-5, rtol=1e-5)
    assert layer.kernel_sizes() == pytest.approx(1.0)


@pytest.mark.parametrize("spread", [0.0, 1.5])
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (2, 3, 1, 12)])
def test_deformable_cpu_sampling_matches_torchvision(shape, spread):
    """The grid_sample path used on CPU computes torchvision's deform_conv2d, values and gradients.

    spread 0: integer sampling positions, where only the one-sided offset gradient is defined.
    """
    torch.manual_seed(0)
    b, _, h, w = shape
    kh = 3 if h > 1 else 1
    x = torch.randn(*shape, requires_grad=True)
    weight = torch.randn(4, 3, kh, 3, requires_grad=True)
    bias = torch.randn(4, requires_grad=True)
    offset = (spread * torch.randn(b, 2 * kh * 3, h, w)).requires_grad_()  # reaches outside the image
    mask = torch.rand(b, kh * 3, h, w, requires_grad=True)
    args = (x, offset, weight, bias)
    ours = deform_conv2d_sampled(*args, padding=(kh // 2, 1), mask=mask)
    ref = deform_conv2d(*args, padding=(kh // 2, 1), mask=mask)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(ref)
    for a, r in zip(torch.autograd.grad(ours, (*args, mask), g), torch.autograd.grad(ref, (*args, mask), g)):
        torch.testing.assert_close(a, r, atol=1e-4, rtol=1e-4)


# -- SRF, dilated -------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma,gauss_side", [(0.4, 3), (1.0, 5), (1.6, 9)])
def test_srf_support_follows_sigma(sigma, gauss_side):
    layer = GaussianBlurConv(2, 3, dim=2, causal=False)
    set_sigma(layer, sigma)
    y = layer(torch.randn(1, 2, 12, 12))
    assert y.shape == (1, 3, 12, 12)
    assert layer.gaussians(12).shape == (2, gauss_side)
    assert layer.kernel_sizes() == [gauss_side + 2] * 2  # composed with the 3 x 3


def test_srf_is_the_composed_filter():
    """Blur then conv equals one conv with the full convolution of the two filters (away from borders)."""
    torch.manual_seed(0)
    layer = GaussianBlurConv(1, 1, dim=1, causal=False)
    set_sigma(layer, 1.0)
    x = torch.randn(1, 1, 40)
    g = layer.gaussians(40)[0]  # symmetric, 5 taps
    f = layer.free_form.weight[0, 0]
    composed = torch.conv1d(f.view(1, 1, -1), g.flip(0).view(1, 1, -1), padding=len(g) - 1)
    y = F.conv1d(x, composed, layer.free_form.bias, padding=composed.shape[-1] // 2)
    torch.testing.assert_close(layer(x)[..., 5:-5], y[..., 5:-5], atol=1e-5, rtol=1e-5)


def test_dilated_is_a_dilated_conv():
    entry = methods.get_method("dilated")
    layer = entry.obj(2, 3, dim=2, causal=False, size=(8, 8))
    x = torch.randn(1, 2, 8, 8)
    torch.testing.assert_close(layer(x), F.conv2d(x, layer.conv.weight, layer.conv.bias, padding=2, dilation=2))
    assert layer.kernel_sizes() == 5.0


# -- ResNets ------------------------------------------------------------------------------------


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


CIFAR = TaskSpec(dim=2, in_channels=3, num_classes=10, size=32)


@pytest.mark.parametrize(
    "name,count,paper",
    [("resnet20", 269_722, 0.27), ("resnet32", 464_154, 0.46), ("resnet44", 658_586, 0.66),
     ("resnet56", 853_018, 0.85), ("resnet110", 1_727_962, 1.7)],
)  # fmt: skip
def test_cifar_resnet_param_counts(name, count, paper):
    model = methods.build_model(name, CIFAR)
    assert n_params(model) == count
    assert round(count / 1e6, 2 if paper < 1 else 1) == paper  # He et al.'s rounded figures


def test_cifar_resnet_shapes_and_width():
    model = methods.build_model("resnet20", CIFAR, width=4)
    assert n_params(model) < 20_000
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert widths[0] == 4 and widths[-1] == 16 and all(w in (4, 8, 16) for w in widths)


@pytest.mark.parametrize("name,count", [("resnet10", 4_903_242), ("resnet18", 11_173_962)])
def test_torchvision_resnets_for_small_images(name, count):
    model = methods.build_model(name, CIFAR)
    assert n_params(model) == count  # ResNet-18 with a 3x3 stem and 10 classes: the usual 11.17M
    assert isinstance(model.maxpool, nn.Identity) and model.conv1.kernel_size == (3, 3)
    assert model.conv1.stride == (1, 1)


def test_torchvision_resnets_are_fully_built():
    model = methods.build_model("resnet10", CIFAR, width=8)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])


def test_torchvision_resnets_take_a_width():
    model = methods.build_model("resnet18", CIFAR, width=8)
    widths = sorted({m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)})
    assert widths == [8, 16, 32, 64] and model.fc.in_features == 64
    assert n_params(model) == 176_402
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


# -- TCN ----------------------------------------------------------------------------------------


SMNIST = TaskSpec(dim=1, in_channels=1, num_classes=10, size=784, causal=True)


def test_tcn_levels_cover_the_sequence():
    assert receptive_field(8, 7) == 3061  # Bai et al.'s sMNIST model
    assert levels_to_cover(784, 7) == 7 and receptive_field(7, 7) >= 784 > receptive_field(6, 7)
    assert n_params(methods.build_model("tcn", SMNIST)) == 58_060  # the generic default: 7 levels
    model = methods.build_model("tcn", SMNIST, levels=8)
    assert len(model.features) == 8
    assert n_params(model) == 66_910  # the paper's "about 70K" at 25 channels; the official TCN's count


def test_tcn_in_the_paper_suites_is_bai_et_al_s_model():
    from bench.papers import get_suite
    from bench.run.grid import build_grid

    grid = build_grid(get_suite("flexconv-seq"), methods_sel=["tcn"])
    by_dataset = {cfg.dataset: cfg.model for cfg in grid.runs if cfg.seed == 0}
    assert by_dataset["smnist"] == by_dataset["pmnist"] == {"levels": 8, "dropout": 0.05}
    assert by_dataset["scifar10"] == {"dropout": 0.05}  # elsewhere the levels still cover the sequence
    assert n_params(methods.build_model("tcn", SMNIST, **by_dataset["smnist"])) == 66_910
    sc = next(cfg.model for cfg in build_grid(get_suite("flexconv-sc"), methods_sel=["tcn"]).runs)
    assert sc == {"dropout": 0.05}  # not the CKCNN's per-dataset dropout


def test_tcn_uses_weight_norm_and_is_causal():
    task = TaskSpec(dim=1, in_channels=2, num_classes=3, size=50, causal=True)
    model = methods.build_model("tcn", task, width=6).eval()
    names = [n for n, _ in model.named_parameters()]
    assert any("parametrizations.weight.original0" in n for n in names)  # the g of weight norm
    x = torch.randn(2, 2, 50)
    x2 = x.clone()
    x2[..., 30:] += 1.0
    with torch.no_grad():
        a, b = model.features(x), model.features(x2)
    torch.testing.assert_close(a[..., :30], b[..., :30])
    assert not torch.allclose(a[..., 30:], b[..., 30:])
