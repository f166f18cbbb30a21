"""The methods after FlexConv: SMPConv, CCNN's separable FlexConv and the CCNN, S4D.

Their kernels against the papers' formulas, their initialisations, hooks and the parameter
counts of the paper suites' configurations against the published sizes.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import datasets
import methods
from bench.base import UserError
from bench.papers import get_suite
from bench.report.reference import load_reference
from bench.run.grid import build_grid
from methods import TaskSpec, hooks
from methods.smpconv import SMPConv


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def card_task(dataset: str) -> TaskSpec:
    """The dataset's task from its card ("3 x 1024"), without loading (or downloading) it."""
    return datasets.get_entry(dataset).card.task_for({})


def suite_param_counts(suite: str) -> dict[str, int]:
    """Parameters of each (dataset) run of a paper suite."""
    counts = {}
    for cfg in build_grid(get_suite(suite), seeds=(0,)).runs:
        counts[cfg.dataset] = n_params(methods.build_model(cfg.method, card_task(cfg.dataset), **cfg.model))
    return counts


def layer(name: str, cin: int, cout: int, dim: int, causal: bool, size, **hp) -> nn.Module:
    return methods.get_method(name).obj(cin, cout, dim=dim, causal=causal, size=size, **hp)


# -- SMPConv ------------------------------------------------------------------------------------


def test_smpconv_paper_suite_has_the_published_sizes():
    counts = suite_param_counts("smpconv")
    # sangnekim/SMPConv smp/README.md: 371k, 371k, 373k, 392k, 371k, 490k
    assert counts == {"smnist": 370_960, "pmnist": 370_960, "scifar10": 373_480, "sc_mfcc": 391_840,
                      "sc_raw": 370_960, "cifar10": 489_622}  # fmt: skip
    refs = load_reference()
    columns = {"smnist": "sMNIST", "pmnist": "pMNIST", "scifar10": "sCIFAR10", "sc_mfcc": "SC MFCC",
               "sc_raw": "SC raw", "cifar10": "CIFAR-10"}  # fmt: skip
    for dataset, count in counts.items():
        assert round(count, -3) == refs[("smpconv", "SMPConv", columns[dataset], "accuracy")].params


def set_points(conv: SMPConv, positions, radii, weights) -> None:
    with torch.no_grad():
        conv.positions.copy_(torch.tensor(positions, dtype=torch.float32))
        conv.radius.copy_(torch.tensor(radii, dtype=torch.float32))
        conv.weight.copy_(torch.tensor(weights, dtype=torch.float32))


def test_smpconv_kernel_is_the_averaged_linear_interpolation_of_its_points():
    conv = SMPConv(1, 1, dim=1, causal=False, size=9, n_points=2, radius=None, coord_std=0.1, small_kernel_size=0)
    assert conv.grid == (9,) and conv.radius[0, 0].item() == pytest.approx(0.25)  # one spacing of the 9-grid
    # point a at 0 (radius 2 spacings), point b at +0.375 (radius 1 spacing): b's support overlaps a's at +0.25
    set_points(conv, [[[0.0], [0.375]]], [[0.5, 0.25]], [[[2.0, -4.0]]])
    x = torch.linspace(-1, 1, 9)
    a = 2.0 * torch.relu(1 - (x - 0.0).abs() / 0.5)
    b = -4.0 * torch.relu(1 - (x - 0.375).abs() / 0.25)
    expected = (a + b) / ((a != 0).int() + (b != 0).int()).clamp(min=1)
    torch.testing.assert_close(conv.sample_kernel()[0, 0], expected)
    assert expected[5] == pytest.approx((1.0 - 2.0) / 2)  # +0.25: the average of both points


def test_smpconv_2d_support_is_an_l1_diamond():
    conv = SMPConv(1, 2, dim=2, causal=False, size=(9, 9), n_points=1, radius=0.5, coord_std=0.1, small_kernel_size=0)
    set_points(conv, [[[0.0, 0.0]], [[0.5, -0.25]]], [[0.5], [0.25]], [[[1.0]], [[3.0]]])
    kernel = conv.sample_kernel()
    centre = kernel[0, 0]
    assert centre[4, 4] == 1.0 and centre[4, 5] == centre[3, 4] == 0.5  # one step along an axis: half
    assert centre[3, 3] == 0.0 and (centre != 0).sum() == 5  # a diagonal step is two steps in L1
    assert kernel[1, 0][6, 3] == 3.0 and (kernel[1, 0] != 0).sum() == 1  # (y, x) = (0.5, -0.25), radius 1 step


def test_smpconv_causal_init_starts_at_the_present_and_hooks():
    torch.manual_seed(0)
    conv = layer("smpconv", 3, 8, 1, True, 100)
    p = conv.positions.detach()
    assert p.shape == (8, 30, 1) and p.min() >= -1 and p.max() <= 1
    assert p.mean() > 0.75 and (p > 0.5).float().mean() > 0.95  # 1 - 2|z|, z ~ N(0, 0.1^2)
    assert torch.all(conv.radius == 2 / 99) and conv.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert conv.small_weight.shape == (8, 3, 5) and conv.normalises_output
    groups = hooks.param_groups(conv, base_lr=0.01, weight_decay=0.05)
    radius = next(g for g in groups if any(q is conv.radius for q in g["params"]))
    positions = next(g for g in groups if any(q is conv.positions for q in g["params"]))
    assert radius["lr"] == pytest.approx(0.001) and radius["weight_decay"] == 0.0
    assert positions["lr"] == 0.01 and positions["weight_decay"] == 0.0
    assert {id(q) for q in conv.size_parameters()} == {id(conv.positions), id(conv.radius)}
    with torch.no_grad():
        conv.radius[0, 0] = -1.0
        conv.radius[0, 1] = 5.0
    conv.post_step()
    assert conv.radius[0, 0].item() == pytest.approx(1e-4) and conv.radius[0, 1].item() == 1.0


def test_smpconv_kernel_size_is_the_extent_its_points_cover():
    conv = SMPConv(1, 2, dim=1, causal=True, size=101, n_points=2, radius=0.01, coord_std=0.1, small_kernel_size=0)
    set_points(conv, [[[1.0], [0.5]], [[0.9], [0.9]]], [[0.02, 0.02], [0.04, 0.02]], [[[1.0, 1.0]], [[1.0, 1.0]]])
    # channel 0: [0.48, 1] -> 0.52 * 50 + 1 = 27 taps; channel 1: [0.86, 0.94] -> 5 taps
    assert conv.kernel_sizes() == pytest.approx(16.0)
    conv2d = SMPConv(1, 1, dim=2, causal=False, size=(21, 41), n_points=2, radius=0.1, coord_std=0.1,
                     small_kernel_size=0)  # fmt: skip
    set_points(conv2d, [[[-0.4, 0.0], [0.4, 0.0]]], [[0.1, 0.1]], [[[1.0, 1.0]]])
    assert conv2d.kernel_sizes() == pytest.approx([11.0, 5.0])  # rows: 1.0 * 10 + 1; columns: 0.2 * 20 + 1


def test_smpconv_branches_carry_their_norms_and_the_backbone_adds_none():
    task = TaskSpec(1, 2, 3, 32, causal=True)
    block = methods.build_model("smpconv", task, width=4).features[0]
    assert isinstance(block.body[0], SMPConv) and isinstance(block.body[1], nn.ReLU)
    plain = methods.build_model("smpconv", task, width=4, small_kernel_size=0).features[0]
    assert isinstance(plain.body[1], nn.BatchNorm1d) and not hasattr(plain.body[0], "norm")
    conv = block.body[0].eval()
    x = torch.randn(2, 2, 32)
    with torch.no_grad():
        points = nn.functional.conv1d(nn.functional.pad(x, (31, 0)), conv.sample_kernel())
        small = nn.functional.conv1d(nn.functional.pad(x, (4, 0)), conv.small_weight)
        torch.testing.assert_close(conv(x), conv.norm(points) + conv.small_norm(small))


@pytest.mark.parametrize(
    "hp, message",
    [({"n_points": 0}, "n_points >= 1"), ({"radius": 0.0}, "radius > 0"), ({"coord_std": -1.0}, "coord_std > 0"),
     ({"small_kernel_size": 4}, "odd")],
)  # fmt: skip
def test_smpconv_bad_hyperparameters(hp, message):
    with pytest.raises(UserError, match=message):
        layer("smpconv", 2, 2, 2, False, (8, 8), **hp)


# -- CCNN and its separable FlexConv -------------------------------------------------------------


def test_ccnn_table1_sizes():
    """CCNN-4,140 / CCNN-6,380 as the suites build them for CCNN's Table 1 runs.

    Sources: the paper's "200K" and "2M"; published_results.md D.5 (from the ccnn repo's layers):
    CCNN-4,140 about 199-201k, CCNN-6,380 about 1.99-2.00M parameters on sMNIST and CIFAR-10.
    """
    small, large = suite_param_counts("ccnn"), suite_param_counts("ccnn-6380")
    assert (small["smnist"], small["cifar10"]) == (198_769, 201_042)
    assert (large["smnist"], large["cifar10"]) == (1_993_091, 1_999_366)
    # more input channels (sCIFAR10, SC MFCC) or classes (CIFAR-100) add a little, the rest is the same net
    assert small == {"smnist": 198_769, "pmnist": 198_769, "scifar10": 199_117, "sc_mfcc": 202_075,
                     "sc_raw": 198_769, "cifar10": 201_042, "cifar100": 213_732, "stl10": 201_042}  # fmt: skip
    assert large["sc_raw"] == large["pmnist"] == 1_993_091 and large["stl10"] == 1_999_366


@pytest.mark.parametrize("dim", [1, 2])
def test_separable_flexconv_is_a_depthwise_flexconv_then_a_pointwise_mixing(dim):
    torch.manual_seed(0)
    size = 40 if dim == 1 else (12, 12)
    conv = layer("flexconv_sep", 5, 7, dim, dim == 1, size).eval()
    magnet = 4 * 32 * (3 * dim + 1) + 3 * (32 * 32 + 32) + 33 * 5  # 4 filters, 3 hidden linears, output to C_in
    assert n_params(conv) == magnet + 5 + dim + 5 * 7 + 7  # depthwise bias, mask width; pointwise
    kernel = conv.depthwise.sample_kernel()
    assert kernel.shape[:2] == (5, 1)
    x = torch.randn(2, 5, *((size,) if dim == 1 else size))
    if dim == 1:  # causal: left padding
        depthwise = nn.functional.conv1d(nn.functional.pad(x, (kernel.shape[-1] - 1, 0)), kernel, groups=5)
    else:
        depthwise = nn.functional.conv2d(x, kernel, padding=tuple(k // 2 for k in kernel.shape[2:]), groups=5)
    expected = conv.pointwise(depthwise + conv.depthwise.bias.view(1, 5, *[1] * dim))
    with torch.no_grad():
        torch.testing.assert_close(conv(x), expected, rtol=1e-4, atol=1e-5)


def test_separable_flexconv_mask_as_in_ccnn():
    conv = layer("flexconv_sep", 3, 4, 1, True, 64).depthwise
    assert "mask_mean" in dict(conv.named_buffers()) and conv.mask_mean.item() == 1.0  # fixed at the present
    (group,) = hooks.own_groups(conv, 0.01)  # declared once: size_parameters, size_lr_factor, size_weight_decay
    assert group["params"] == [conv.mask_width] and group["lr"] == 0.01 and "weight_decay" not in group
    (group,) = hooks.param_groups(conv, base_lr=0.01, weight_decay=1e-4)[1:]
    assert group["weight_decay"] == 1e-4  # CCNN's decay reaches its masks
    learned = layer("flexconv_sep", 3, 4, 1, True, 64, learn_mean=True, mask_lr_factor=0.1).depthwise
    assert {n for n, _ in learned.named_parameters()} >= {"mask_mean", "mask_width"}
    assert hooks.own_groups(learned, 0.01)[0]["lr"] == pytest.approx(0.001)


@pytest.mark.parametrize("causal", [True, False])
def test_separable_flexconv_kernel_net_has_ccnns_initialisation(causal):
    torch.manual_seed(0)
    size = 784 if causal else (32, 32)
    conv = layer("flexconv_sep", 3, 4, 1 if causal else 2, causal, size, omega_0=2976.49).depthwise
    net, s = conv.net, 1.667 * 0.075
    if causal:  # envelopes start at and before the present: 1 - s U(0, 1)
        assert net.mu.min() >= 1 - s and net.mu.max() <= 1.0
    else:
        assert net.mu.abs().max() <= s and net.mu.min() < 0 < net.mu.max()
    dim = net.A.shape[-1]
    ratio = (net.A / (2 * math.pi * 2976.49 * net.gamma)).abs()  # the default 1x1-conv init, U(+-1/sqrt(dim))
    assert ratio.max() <= 1 / math.sqrt(dim) and ratio.max() > 0.9 / math.sqrt(dim)
    assert torch.all(net.c == 0) and torch.all(net.b == 1) and torch.all(net.b_out == 0)
    assert net.W.abs().max() <= math.sqrt(3 / 32) and net.W.abs().max() > 0.9 * math.sqrt(3 / 32)
    taps = math.prod(b - a for a, b in conv.crop())  # Chang: the output layer times sqrt(1 / taps)
    assert taps == (64 if causal else 25)
    bound = math.sqrt(3 / 32) / math.sqrt(taps)
    assert net.W_out.abs().max() <= bound and net.W_out.abs().max() > 0.9 * bound


def test_ccnn_blocks_are_pre_norm_s4_blocks_with_a_mean_readout():
    torch.manual_seed(0)
    task = TaskSpec(1, 2, 3, 40, causal=True)
    model = methods.build_model("ccnn", task, blocks=2, width=6).eval()
    assert [type(m) for m in model.stem] == [type(model.stem[0]), nn.BatchNorm1d, nn.GELU]
    block = model.blocks[0]
    norm, conv, _, drop, linear, _ = block.body
    assert isinstance(norm, nn.BatchNorm1d) and isinstance(drop, nn.Dropout1d)
    x = torch.randn(3, 6, 40)
    with torch.no_grad():
        hand = x + nn.functional.gelu(linear(nn.functional.gelu(conv(norm(x)))))
        torch.testing.assert_close(block(x), hand)
        inp = torch.randn(3, 2, 40)
        h = model.out_norm(model.blocks(model.stem(inp)))
        torch.testing.assert_close(model(inp), model.head(h.mean(-1)))


@pytest.mark.parametrize(
    "hp, message",
    [({"blocks": 0}, "blocks, width >= 1"), ({"dropout": 1.0}, "dropouts"), ({"omega_0": 0.0}, "omega_0")],
)
def test_ccnn_bad_hyperparameters(hp, message):
    with pytest.raises(UserError, match=message):
        methods.build_model("ccnn", TaskSpec(1, 1, 2, 16, causal=True), **hp)


# -- S4D ----------------------------------------------------------------------------------------


def ssm_recurrence(conv, u: torch.Tensor, axis: int = 0, side: int = 0) -> torch.Tensor:
    """y[t] = 2 Re sum_n C_n s_n[t], s_n[t] = exp(dt A_n) s_n[t-1] + (exp(dt A_n) - 1) / A_n u[t]: the SSM run step by step."""
    dt = conv.log_dt[axis].exp().double().unsqueeze(-1)
    A = torch.complex(-conv.log_A_real[axis].exp().double(), conv.A_imag[axis].double())
    C = torch.view_as_complex(conv.C[axis, side].double().contiguous())
    a_bar, b_bar = torch.exp(dt * A), (torch.exp(dt * A) - 1) / A
    state = torch.zeros(u.shape[0], *A.shape, dtype=A.dtype)
    out = []
    for t in range(u.shape[-1]):
        state = a_bar * state + b_bar * u[..., t].double().unsqueeze(-1)
        out.append(2 * (C * state).sum(-1).real)
    return torch.stack(out, -1)


def test_s4d_causal_layer_is_the_diagonal_ssm_run_step_by_step():
    torch.manual_seed(0)
    conv = layer("s4d", 2, 3, 1, True, 60, state_size=8).eval()
    x = torch.randn(2, 2, 60)
    with torch.no_grad():
        u = conv.mix(x)
        expected = ssm_recurrence(conv, u) + conv.D.view(1, -1, 1).double() * u.double()
        torch.testing.assert_close(conv(x).double(), expected, rtol=1e-4, atol=1e-4)
    assert conv.sample_kernel().shape == (3, 1, 60)  # every lag of the input


def test_s4d_centred_sequence_adds_an_ssm_run_backwards_from_the_next_step():
    torch.manual_seed(0)
    conv = layer("s4d", 2, 3, 1, False, 30, state_size=8, kernel_size=59).eval()  # lags -29 .. 29: all of them
    x = torch.randn(2, 2, 30)
    with torch.no_grad():
        u = conv.mix(x)
        past = ssm_recurrence(conv, u, side=0)
        # the future side: the second C run over the reversed input, without its lag 0 (the impulse response at 0)
        lag0 = ssm_recurrence(conv, torch.ones(1, 3, 1), side=1)
        future = ssm_recurrence(conv, u.flip(-1), side=1).flip(-1) - lag0 * u.double()
        expected = past + future + conv.D.view(1, -1, 1).double() * u.double()
        torch.testing.assert_close(conv(x).double(), expected, rtol=1e-4, atol=1e-4)


def test_s4d_image_kernel_is_the_outer_product_of_one_ssm_kernel_per_axis():
    torch.manual_seed(0)
    conv = layer("s4d", 2, 3, 2, False, (9, 12), state_size=8).eval()
    x = torch.randn(2, 2, 9, 12)
    with torch.no_grad():
        u, kernel = conv.mix(x), conv.sample_kernel()
        assert kernel.shape == (3, 1, 9, 13)
        rows, cols = kernel[:, 0, :, 6], kernel[:, 0, 4, :]  # the centre row and column
        torch.testing.assert_close(kernel[:, 0], rows.unsqueeze(-1) * cols.unsqueeze(1) / kernel[:, 0, 4:5, 6:7])
        # separable: one 1D convolution per axis gives the layer's output
        along_y = nn.functional.conv2d(u, rows.view(3, 1, 9, 1) / kernel[:, 0, 4, 6].view(3, 1, 1, 1), padding=(4, 0),
                                       groups=3)  # fmt: skip
        both = nn.functional.conv2d(along_y, cols.view(3, 1, 1, 13), padding=(0, 6), groups=3)
        torch.testing.assert_close(conv(x), both + conv.D.view(1, 3, 1, 1) * u, rtol=1e-4, atol=1e-5)


def test_s4d_init_optimizer_group_and_size():
    torch.manual_seed(0)
    conv = layer("s4d", 4, 50, 1, True, 1000)
    dt = conv.log_dt.exp()
    assert dt.min() >= 0.001 and dt.max() <= 0.1 and dt.max() / dt.min() > 20  # log-uniform in [1e-3, 0.1]
    torch.testing.assert_close(conv.log_A_real.exp(), torch.full((1, 50, 32), 0.5))  # Re A = -1/2
    torch.testing.assert_close(conv.A_imag[0, 0], math.pi * torch.arange(32.0))  # Im A = pi n (S4D-Lin)
    assert conv.C.square().sum(-1).mean().item() == pytest.approx(1.0, rel=0.1)  # C ~ CN(0, 1)
    for base_lr, expected in ((0.01, 1e-3), (1e-4, 1e-4)):
        groups = hooks.param_groups(conv, base_lr=base_lr, weight_decay=0.05)
        ssm = groups[1]
        assert ssm["lr"] == expected and ssm["weight_decay"] == 0.0
        assert {id(p) for p in ssm["params"]} == {id(conv.log_dt), id(conv.log_A_real), id(conv.A_imag)}
        assert {id(p) for p in groups[0]["params"]} == {id(p) for p in (conv.C, conv.D, *conv.mix.parameters())}
    assert {id(p) for p in conv.size_parameters()} == {id(p) for p in ssm["params"]}
    with torch.no_grad():
        conv.log_dt.fill_(math.log(0.01))
        conv.log_A_real[..., 1:] = math.log(5.0)  # faster modes do not set the size: the slowest does
    assert conv.kernel_sizes() == pytest.approx(200.0)  # 1 / (0.01 * 0.5)
    centred = layer("s4d", 1, 2, 2, False, (64, 300))
    with torch.no_grad():
        centred.log_dt.fill_(math.log(0.02))
    assert centred.kernel_sizes() == pytest.approx([65.0, 201.0])  # 2 / (0.02 * 0.5) + 1, capped at the 65-grid


@pytest.mark.parametrize(
    "hp, message",
    [({"state_size": 7}, "even state_size"), ({"dt_min": 0.2}, "dt_min <= dt_max"), ({"ssm_lr": 0.0}, "ssm_lr > 0")],
)
def test_s4d_bad_hyperparameters(hp, message):
    with pytest.raises(UserError, match=message):
        layer("s4d", 2, 2, 1, True, 16, **hp)


# -- all three ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["smpconv", "flexconv_sep", "ccnn", "s4d"])
@pytest.mark.parametrize("task", [TaskSpec(1, 2, 3, 24, causal=True), TaskSpec(2, 3, 4, (12, 12))], ids=["1d", "2d"])
def test_kernels_reach_the_reports_kernel_images(name, task):
    from bench.run.kernels import decode, snapshot

    torch.manual_seed(0)
    hp = {"blocks": 2, "width": 4} if name == "ccnn" else {"width": 4}
    model = methods.build_model(name, task, **hp)
    shots = snapshot(model)
    convs = [m for m in model.modules() if callable(getattr(m, "sample_kernel", None))]
    assert len(shots) == len(convs) == (3 if name == "ccnn" else 4 if task.dim == 1 else 7)
    for module, shot in zip(convs, shots.values()):
        kernel = decode(shot["kernel"])
        assert kernel.ndim == task.dim and shot["causal"] == task.causal
        expected = module.sample_kernel()[0, 0].detach().numpy()
        assert kernel.shape == expected.shape and abs(kernel - expected).max() < 2e-3 * abs(expected).max() + 1e-6
        assert ("mask" in shot) == (name in ("flexconv_sep", "ccnn"))
