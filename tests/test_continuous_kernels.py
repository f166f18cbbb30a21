"""CKConv, FlexConv and their kernel nets: parameters, masks and crops, causality, FFT parity,
resolution change, regularisers, the eval-mode kernel cache."""

from __future__ import annotations

import math

import pytest
import torch

from methods import TaskSpec, build_model, card_of, get_method, hooks, list_methods
from methods.ckconv import CKConv
from methods.flexconv import FlexConv
from methods.functional import conv_with_kernel, prefer_fft

CONTINUOUS = ["ckconv", "ckconv_magnet", "flexconv", "flexconv_siren", "flexconv_gabor", "flexconv_fourier"]
FLEX = [m for m in CONTINUOUS if m.startswith("flexconv")]


def layer(method: str, cin: int, cout: int, dim: int, size, **hp):
    return get_method(method).obj(cin, cout, dim=dim, causal=dim == 1, size=size, **hp)


def test_registered_with_cards():
    assert set(CONTINUOUS) <= set(list_methods())
    for name in CONTINUOUS:
        card = card_of(name)
        assert card.dims == (1, 2) and card.causal and card.resolution_change and card.deterministic_cuda
        assert card.learned_size == (name in FLEX)
    assert card_of("flexconv").kernel_size_unit == "taps per dimension (cropped)"


def test_flexnet7_has_the_papers_parameter_count():
    model = build_model("flexconv", TaskSpec(2, 3, 10, (32, 32)), arch="flexnet7")
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 671_650
    for cin, cout in [(3, 24), (36, 48)]:  # MAGNet 4064 + mask 4, output net 33*cin*cout, bias cout
        assert sum(p.numel() for p in layer("flexconv", cin, cout, 2, (32, 32)).parameters()) == (
            4068 + 33 * cin * cout + cout
        )


def test_ckcnn_with_the_ckconv_repos_kernel_net():
    """weight_norm=True: weight norm on every kernel-net layer (one g per output) and U(-1, 1) biases."""
    smnist = TaskSpec(1, 1, 10, 784, causal=True)
    count = {wn: sum(p.numel() for p in build_model("ckconv", smnist, arch="ckcnn", weight_norm=wn).parameters())
             for wn in (False, True)}  # fmt: skip
    assert count == {False: 95_300, True: 98_286}  # + (32 + 32 + cin * cout) per CKConv
    stds = {}
    for wn in (False, True):
        torch.manual_seed(0)
        conv = layer("ckconv", 30, 30, 1, 784, weight_norm=wn)
        stds[wn] = conv.sample_kernel().std().item()
    assert 0.6 < stds[True] < 0.8 and 0.08 < stds[False] < 0.13  # issue 11: 0.68 (CKConv repo) and 0.099 (ours)
    linears = conv.net.linears
    assert all(hasattr(lin, "parametrizations") and lin.parametrizations.weight.original0.shape == (lin.out_features, 1)
               for lin in linears)  # fmt: skip
    biases = torch.cat([lin.bias.detach() for lin in linears])
    assert biases.abs().max() <= 1.0 and biases.abs().max() > 0.9  # U(-1, 1), not the default U(+-1/sqrt(fan_in))
    first = linears[0].weight.detach()  # PyTorch's default U(+-1/sqrt(fan_in)) = U(+-1) on the 1D input
    assert first.abs().max() <= 1.0 and first.abs().max() > 0.9
    with pytest.raises(ValueError, match="SIREN kernel net only"):
        CKConv(2, 2, dim=1, causal=True, size=16, kernel_net="magnet", weight_norm=True)


def test_the_ckcnn_rows_use_the_ckconv_repos_kernel_net_and_the_flexnet_ablation_does_not():
    """The CKCNN of the CKConv paper (and of FlexConv Tables 1-2, which cite its numbers) is the CKConv repo's
    model; FlexNet-7's "CKCNN" ablation (Table 3) is the FlexConv repo's SIREN."""
    from bench.papers import get_suite
    from bench.run.grid import build_grid

    ckconv_runs = build_grid(get_suite("ckconv-seq"), seeds=(0,)).runs
    seq_runs = [cfg for s in ("flexconv-seq", "flexconv-sc")
                for cfg in build_grid(get_suite(s), methods_sel=["ckconv"], seeds=(0,)).runs]  # fmt: skip
    flexnet_runs = build_grid(get_suite("flexconv-cifar"), methods_sel=["ckconv"], seeds=(0,)).runs
    assert ckconv_runs and all(cfg.model["weight_norm"] is True for cfg in ckconv_runs + seq_runs)
    assert flexnet_runs and all("weight_norm" not in cfg.model for cfg in flexnet_runs)


@pytest.mark.parametrize("method", CONTINUOUS)
@pytest.mark.parametrize("dim", [1, 2])
def test_gradients_reach_every_parameter(method, dim):
    torch.manual_seed(0)
    size = 24 if dim == 1 else (12, 12)
    conv = layer(method, 2, 3, dim, size)
    if method in FLEX:  # a wider mask, so every position sees some signal
        with torch.no_grad():
            conv.mask_width.fill_(0.3)
    x = torch.randn(2, 2, *((size,) if dim == 1 else size))
    conv(x).square().sum().backward()
    for name, p in conv.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    if method in FLEX:
        assert {"mask_mean", "mask_width"} <= {n for n, _ in conv.named_parameters()}


def test_initial_crop_matches_the_paper():
    assert layer("flexconv", 2, 2, 2, (32, 32)).kernel_sizes() == [5.0, 5.0]  # 33-grid, sigma 0.075
    assert layer("flexconv", 2, 2, 1, 1024).kernel_sizes() == 83.0  # about 82 taps in methods.md A.3


@pytest.mark.parametrize(("dim", "size", "taps"), [(2, (8, 8), [3.0, 3.0]), (1, 8, 2.0)])
def test_mask_can_grow_from_the_smallest_crop(dim, size, taps):
    """The repo's crop would keep the centre tap alone here, where the mask has no gradient."""
    torch.manual_seed(0)
    conv = layer("flexconv", 2, 2, dim, size)
    assert conv.kernel_sizes() == taps
    conv(torch.randn(2, 2, *((size,) if dim == 1 else size))).square().sum().backward()
    assert conv.mask_width.grad.abs().sum() > 0


@pytest.mark.parametrize("dim", [1, 2])
def test_crop_keeps_exactly_the_positions_above_threshold(dim):
    torch.manual_seed(0)
    size = 101 if dim == 1 else (40, 40)
    conv = layer("flexconv", 1, 1, dim, size)
    full = conv.grid[0]
    xs = torch.linspace(-1, 1, full, dtype=torch.float64)
    for mean, width in [(0.9, 0.05), (0.3, 0.2), (-0.2, 0.11), (1.0, 0.4)]:
        with torch.no_grad():
            conv.mask_mean.fill_(mean if dim == 1 else mean / 4)
            conv.mask_width.fill_(width)
        (start, stop), mu = conv.crop()[0], conv.mask_mean[0].item()
        above = torch.exp(-0.5 * ((xs - mu) / width) ** 2) > 0.1
        kept = torch.zeros(full, dtype=torch.bool)
        kept[start:stop] = True
        if dim == 1:  # causal: cut on the left only, the kernel always ends at the present step
            assert stop == full
            assert not (above & ~kept).any() and (above[start] or start == 0)
        else:  # symmetric about the centre, so sides stay odd
            assert (stop - start) % 2 == 1 and start == full - stop
            assert not (above & ~kept).any()
            assert above[start] or above[stop - 1]


@pytest.mark.parametrize("dim", [1, 2])
def test_cropped_kernel_is_the_masked_net_on_the_kept_positions(dim):
    torch.manual_seed(0)
    conv = layer("flexconv", 2, 3, dim, 30 if dim == 1 else (16, 16))
    kernel = conv.sample_kernel()
    crop = conv.crop()
    axes = [torch.linspace(-1, 1, k)[a:b] for k, (a, b) in zip(conv.grid, crop)]
    pos = torch.stack([m.reshape(-1) for m in torch.meshgrid(*axes, indexing="ij")], 1)
    mask = math.prod(torch.exp(-0.5 * ((pos[:, d] - conv.mask_mean[d]) / conv.mask_width[d]) ** 2) for d in range(dim))
    expected = (conv.net(pos) * mask).view_as(kernel)
    torch.testing.assert_close(kernel, expected, rtol=1e-4, atol=1e-6)
    assert list(kernel.shape[2:]) == [b - a for a, b in crop]


@pytest.mark.parametrize("dim", [1, 2])
def test_widening_the_mask_grows_the_kernel(dim):
    conv = layer("flexconv", 2, 2, dim, 64 if dim == 1 else (32, 32))
    x = torch.randn(1, 2, *((64,) if dim == 1 else (32, 32)))
    sizes = []
    for width in (0.075, 0.15, 0.3, 1.0):
        with torch.no_grad():
            conv.mask_width.fill_(width)
        ks = conv.kernel_sizes()
        sizes.append(ks if dim == 1 else ks[0])
        assert conv(x).shape == x.shape
        assert list(conv.sample_kernel().shape[2:]) == ([ks] if dim == 1 else ks)
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]
    assert sizes[-1] == (64 if dim == 1 else 33)  # the root left [-1, 1]: no crop
    with torch.no_grad():
        conv.mask_width.fill_(0.3)
    if dim == 2:
        assert conv.kernel_sizes() == [21.0, 21.0]  # issue 3's wide-mask configuration


def test_mask_has_its_own_param_group():
    model = build_model("flexconv", TaskSpec(1, 2, 3, 32, causal=True), arch="flextcn2", width=4)
    groups = hooks.param_groups(model, base_lr=0.01, weight_decay=0.05)
    masks = [g for g in groups if g["lr"] == pytest.approx(0.001)]
    assert len(masks) == 4 and all(g["weight_decay"] == 0.0 for g in masks)  # 2 blocks x 2 FlexConvs
    assert all(len(g["params"]) == 2 and g["params"][0].shape == (1,) for g in masks)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


@pytest.mark.parametrize("method", CONTINUOUS)
@pytest.mark.parametrize("length", [40, 300])
def test_layers_are_causal(method, length):
    torch.manual_seed(0)
    conv = layer(method, 3, 4, 1, length)
    if method in FLEX:
        with torch.no_grad():
            conv.mask_width.fill_(0.5)
    x = torch.randn(2, 3, length)
    cut = length // 2
    x2 = x.clone()
    x2[..., cut:] += torch.randn_like(x2[..., cut:]) * 10
    with torch.no_grad():
        y, y2 = conv(x), conv(x2)
    torch.testing.assert_close(y[..., :cut], y2[..., :cut], rtol=0, atol=1e-4)
    assert (y[..., cut:] - y2[..., cut:]).abs().max() > 1e-2  # the future does reach the outputs after the cut


@pytest.mark.parametrize(("method", "arch"), [("flexconv", "flextcn2"), ("ckconv", "ckcnn")])
def test_models_are_causal(method, arch):
    torch.manual_seed(0)
    model = build_model(method, TaskSpec(1, 2, 5, 100, causal=True), arch=arch, width=6).eval()
    x = torch.randn(3, 2, 100)
    x2 = x.clone()
    x2[..., 60:] = torch.randn_like(x2[..., 60:])
    with torch.no_grad():
        h, h2 = model.features(x), model.features(x2)
    torch.testing.assert_close(h[..., :60], h2[..., :60], rtol=0, atol=1e-4)
    assert model(x).shape == (3, 5)


@pytest.mark.parametrize(
    ("x_shape", "k_shape", "causal"),
    [((2, 3, 50), (17,), True), ((2, 3, 50), (50,), True), ((2, 3, 300), (5,), True), ((2, 3, 31), (9,), False),
     ((2, 3, 20, 23), (7, 9), False), ((2, 3, 16, 16), (17, 17), False), ((1, 2, 8, 8), (1, 1), False),
     ((2, 3, 32, 32), (3, 3), False)],  # the last two: a small kernel's DFT by one matrix product
)  # fmt: skip
def test_fft_and_direct_agree(x_shape, k_shape, causal):
    torch.manual_seed(0)
    x = torch.randn(x_shape, requires_grad=True)
    w = torch.randn(4, x_shape[1], *k_shape, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    direct = conv_with_kernel(x, w, b, causal=causal, use_fft=False)
    fft = conv_with_kernel(x, w, b, causal=causal, use_fft=True)
    assert fft.shape == direct.shape == (x_shape[0], 4, *x_shape[2:])
    assert ((fft - direct).norm() / direct.norm()).item() < 1e-4
    grad = torch.randn_like(direct)  # the FFT path has its own backward: check it too
    for g_fft, g_direct in zip(torch.autograd.grad(fft, (x, w, b), grad), torch.autograd.grad(direct, (x, w, b), grad)):
        assert ((g_fft - g_direct).norm() / g_direct.norm()).item() < 1e-4


@pytest.mark.parametrize(
    ("x_shape", "k_shape", "causal"),
    [((2, 5, 50), (17,), True), ((2, 5, 50), (50,), True), ((2, 5, 300), (5,), True), ((2, 5, 31), (9,), False),
     ((2, 5, 20, 23), (7, 9), False), ((2, 5, 16, 16), (17, 17), False), ((2, 5, 32, 32), (3, 3), False)],
)  # fmt: skip
def test_depthwise_kernels_on_both_paths_equal_the_diagonal_dense_kernel(x_shape, k_shape, causal):
    """A (C, 1, ...) weight convolves each channel alone: the dense kernel with it on the diagonal, on both paths."""
    torch.manual_seed(0)
    c = x_shape[1]
    x = torch.randn(x_shape, dtype=torch.float64, requires_grad=True)
    w = torch.randn(c, 1, *k_shape, dtype=torch.float64, requires_grad=True)
    b = torch.randn(c, dtype=torch.float64, requires_grad=True)
    dense = torch.zeros(c, c, *k_shape, dtype=torch.float64)
    for i in range(c):
        dense[i, i] = w[i, 0].detach()
    reference = conv_with_kernel(x.detach(), dense, b.detach(), causal=causal, use_fft=False)
    grad = torch.randn_like(reference)
    grads = []
    for use_fft in (False, True):
        y = conv_with_kernel(x, w, b, causal=causal, use_fft=use_fft)
        torch.testing.assert_close(y, reference, rtol=1e-10, atol=1e-10)
        grads.append(torch.autograd.grad(y, (x, w, b), grad))
    for g_direct, g_fft in zip(*grads):
        torch.testing.assert_close(g_fft, g_direct, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="depthwise"):
        conv_with_kernel(x, torch.randn(c, 2, *k_shape, dtype=torch.float64), None, causal=causal)


def test_cost_model_picks_fft_for_wide_kernels_and_direct_for_small():
    assert prefer_fft((32, 36, 32, 32), (36, 36, 21, 21))  # FlexConv with the mask at sigma = 0.3
    assert prefer_fft((32, 30, 1024), (30, 30, 1024), causal=True)  # CKConv over a whole sequence
    assert not prefer_fft((64, 32, 32, 32), (32, 32, 3, 3))
    assert not prefer_fft((64, 8, 8, 8), (8, 8, 3, 3))
    # depthwise: the grouped direct convolution is slow per multiply-add, the FFT wins sooner
    assert prefer_fft((64, 8, 16, 16), (8, 1, 17, 17)) and not prefer_fft((64, 8, 16, 16), (8, 1, 3, 3))
    assert prefer_fft((64, 30, 784), (30, 1, 60), causal=True) and not prefer_fft(
        (64, 30, 784), (30, 1, 9), causal=True
    )


@pytest.mark.parametrize("method", CONTINUOUS)
def test_change_resolution_keeps_shapes(method):
    torch.manual_seed(0)
    model = build_model(method, TaskSpec(2, 3, 4, (16, 16)), arch="flexnet3", width=4).eval()
    first = next(m for m in model.modules() if isinstance(m, CKConv))
    assert first.grid == (17, 17)
    assert hooks.change_resolution(model, 2.0) == 7  # stem + 3 blocks x 2
    assert first.grid == (33, 33) and first.rate_norm == 0.25
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    if method in FLEX:  # the mask lives in continuous coordinates: twice the taps
        assert first.kernel_sizes() == [5.0, 5.0]
    hooks.change_resolution(model, 1.0)
    assert first.grid == (17, 17) and first.rate_norm == 1.0


def test_change_resolution_of_sequences():
    model = build_model("flexconv", TaskSpec(1, 2, 3, 64, causal=True), arch="flextcn2", width=4).eval()
    hooks.change_resolution(model, 2.0)
    conv = next(m for m in model.modules() if isinstance(m, CKConv))
    assert conv.grid == (127,) and conv.rate_norm == 0.5
    with torch.no_grad():
        assert model(torch.randn(2, 2, 128)).shape == (2, 3)


def test_resampled_kernel_keeps_its_integral():
    """Alias-free rescaling: a smooth kernel at twice the rate, times 1/ratio^dim, integrates the same."""

    def integral(kernel):  # trapezoid rule: the sampled kernel times the rate norm is f * step^dim
        k = kernel[0, 0].clone()
        k[[0, -1]] /= 2
        k[:, [0, -1]] /= 2
        return k.sum()

    torch.manual_seed(0)
    conv = layer("ckconv", 1, 1, 2, (16, 16), omega_0=1.0)
    before = integral(conv.sample_kernel())
    conv.change_resolution(2.0)
    assert conv.sample_kernel().shape[2:] == (33, 33)
    assert abs(integral(conv.sample_kernel()) / before - 1) < 0.01


def test_antialiasing_penalty():
    torch.manual_seed(0)
    conv = layer("flexconv", 2, 2, 2, (32, 32), antialias=0.1)
    high = conv.regularization_loss()
    assert high > 0  # MAGNet starts above the Nyquist bound of a 33-grid
    high.backward()
    assert conv.net.A.grad.abs().sum() > 0 and conv.net.gamma.grad.abs().sum() > 0
    with torch.no_grad():
        conv.net.A.mul_(0.01)
        conv.net.gamma.mul_(0.01)
    assert conv.regularization_loss() == 0
    assert conv.aliasing_penalty() == 0
    with_mask = layer("flexconv", 2, 2, 2, (32, 32), antialias=0.1, antialias_mask=True)
    with torch.no_grad():
        with_mask.net.A.mul_(0.01)
        with_mask.net.gamma.mul_(0.01)
        assert with_mask.regularization_loss() == 0  # mask term 2 / (2 pi 0.075) / 4 filters < 8 / 4
        with_mask.mask_width.fill_(0.02)
    assert with_mask.regularization_loss() > 0  # 2 / (2 pi 0.02) / 4 > 8 / 4
    assert layer("flexconv", 2, 2, 2, (32, 32)).regularization_loss() == 0  # off by default


def test_kernel_norm_weight_decay():
    torch.manual_seed(0)
    conv = layer("flexconv", 2, 3, 1, 32, kernel_wd=1e-3).train()
    conv(torch.randn(2, 2, 32))
    kernel = conv.sample_kernel()
    torch.testing.assert_close(conv.regularization_loss(), 1e-3 * (kernel.norm() + conv.bias.norm()))


def test_eval_cache_reuses_the_kernel_until_a_parameter_changes():
    torch.manual_seed(0)
    model = build_model("flexconv", TaskSpec(2, 3, 4, (12, 12)), arch="flexnet3", width=4)
    conv = next(m for m in model.modules() if isinstance(m, FlexConv))
    calls = []
    sample = conv.sample_kernel
    conv.sample_kernel = lambda: calls.append(1) or sample()
    x = torch.randn(2, 3, 12, 12)
    model.eval()
    with torch.no_grad():
        y1, y2 = model(x), model(x)
    assert len(calls) == 1 and torch.equal(y1, y2)

    with torch.no_grad():  # an in-place update, as an optimizer or load_state_dict makes
        conv.net.W_out.add_(0.1)
        y3 = model(x)
    assert len(calls) == 2 and not torch.allclose(y1, y3)

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    model(x).sum().backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        y4, y5 = model(x), model(x)
        cached, fresh = conv.kernel(), sample()
    assert torch.equal(y4, y5) and not torch.allclose(y3, y4)
    assert torch.equal(cached, fresh)


BANKED = [
    ("flexconv", TaskSpec(2, 3, 10, (16, 16)), {"arch": "flexnet5", "width": 6}),
    ("flexconv_gabor", TaskSpec(2, 3, 10, (16, 16)), {"arch": "flexnet5", "width": 6}),
    ("flexconv_fourier", TaskSpec(2, 3, 10, (16, 16)), {"arch": "flexnet5", "width": 6}),
    ("flexconv_siren", TaskSpec(1, 3, 10, 64, causal=True), {"arch": "flextcn2", "width": 6}),
    ("ckconv", TaskSpec(2, 3, 10, (16, 16)), {"arch": "flexnet5", "width": 6}),
    ("ckconv_magnet", TaskSpec(1, 3, 10, 64, causal=True), {"arch": "flextcn2", "width": 6}),
    ("flexconv_sep", TaskSpec(2, 3, 10, (16, 16)), {"arch": "flexnet5", "width": 6}),
    ("ccnn", TaskSpec(1, 3, 10, 64, causal=True), {}),
    ("s4d", TaskSpec(2, 3, 10, (16, 16)), {"arch": "flexnet5", "width": 6}),
    ("s4d", TaskSpec(1, 3, 10, 64, causal=True), {"arch": "flextcn2", "width": 6}),
    ("dcn_sigma", TaskSpec(2, 3, 10, (16, 16)), {"arch": "flexnet5", "width": 6}),
    ("dcn_sigma", TaskSpec(1, 3, 10, 64, causal=True), {"arch": "flextcn2", "width": 6}),
    ("njet", TaskSpec(2, 3, 10, (16, 16)), {"arch": "flexnet5", "width": 6}),
    ("njet", TaskSpec(1, 3, 10, 64, causal=True), {"arch": "flextcn2", "width": 6}),
    ("smpconv", TaskSpec(2, 3, 10, (16, 16)), {"arch": "flexnet5", "width": 6}),
    ("smpconv", TaskSpec(1, 3, 10, 64, causal=True), {"arch": "flextcn2", "width": 6}),
]


@pytest.mark.parametrize("method,task,hp", BANKED, ids=[f"{b[0]}-{b[1].dim}d" for b in BANKED])
def test_a_layer_batched_with_its_neighbours_computes_what_it_computes_alone(method, task, hp):
    """methods/kernelbank.py: the network's layers evaluate their kernel nets in one batched call, on the union
    of their crops; each layer's kernel and the gradients it sends back equal those of its own call."""
    torch.manual_seed(0)
    model = build_model(method, task, **hp).train()
    layers = [m for m in model.modules() if "_bank" in m.__dict__]
    assert len(layers) >= 4
    with torch.no_grad():  # masks of different widths: different crops in one batch
        for i, layer in enumerate(layers):
            if hasattr(layer, "mask_width"):
                layer.mask_width.mul_(1 + 0.7 * i)
            if hasattr(layer, "log2_sigma"):  # N-Jet: supports of different sizes
                layer.log2_sigma.add_(0.25 * i)
    params = [p for layer in layers for p in layer.parameters()]
    bank = layers[0]._bank
    bank.start()
    together = [bank.kernel(layer) for layer in layers]
    bank.stop()
    alone = [layer.sample_kernel() for layer in layers]
    weights = [torch.randn_like(k) for k in alone]
    grads_alone = torch.autograd.grad(sum((k * w).sum() for k, w in zip(alone, weights)), params, allow_unused=True)
    grads_together = torch.autograd.grad(
        sum((k * w).sum() for k, w in zip(together, weights)), params, allow_unused=True
    )
    for a, t in zip(alone, together):
        assert a.shape == t.shape
        torch.testing.assert_close(t, a, rtol=1e-5, atol=1e-6 * a.abs().max().item())
    for a, t in zip(grads_alone, grads_together):
        if a is None:
            assert t is None or not t.any()
        else:
            torch.testing.assert_close(t, a, rtol=1e-4, atol=1e-5 * a.abs().max().item())
    if method.startswith("flexconv") or method == "njet":
        assert len({tuple(k.shape[2:]) for k in alone}) > 1  # the crops did differ


@pytest.mark.parametrize("method,task,hp", BANKED, ids=[f"{b[0]}-{b[1].dim}d" for b in BANKED])
def test_a_network_with_its_kernel_bank_trains_as_without_it(method, task, hp):
    """End to end: the network's output and every parameter's gradient with the batched kernels equal those of
    the same network whose layers sample alone; also at another input size (N-Jet caps its support by it)."""
    import copy

    torch.manual_seed(0)
    banked = build_model(method, task, **hp).train()
    alone = copy.deepcopy(banked)
    for m in alone.modules():
        m.__dict__.pop("_bank", None)
    full = tuple(task.input_shape[1:])
    for size in [full, tuple(s // 2 for s in full)] if method == "njet" else [full]:
        x = torch.randn(2, task.in_channels, *size)
        torch.manual_seed(1)
        out_banked = banked(x)
        torch.manual_seed(1)  # the same dropout masks
        out_alone = alone(x)
        torch.testing.assert_close(out_banked, out_alone, rtol=1e-4, atol=1e-5)
        g_banked = torch.autograd.grad(out_banked.square().sum(), list(banked.parameters()), allow_unused=True)
        g_alone = torch.autograd.grad(out_alone.square().sum(), list(alone.parameters()), allow_unused=True)
        # float rounding on the scale of the largest gradient (a bias before a batch norm has a true gradient
        # of zero: its computed one is rounding noise either way)
        scale = max(a.abs().max().item() for a in g_alone if a is not None)
        for name, a, b in zip([n for n, _ in alone.named_parameters()], g_alone, g_banked):
            if a is None:
                assert b is None or not b.any(), name
            else:
                torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-5 * scale, msg=name)


def test_the_bank_serves_only_inside_the_networks_forward():
    torch.manual_seed(0)
    model = build_model("flexconv", TaskSpec(2, 3, 10, (8, 8)), arch="flexnet3", width=4).train()
    layer = next(m for m in model.modules() if "_bank" in m.__dict__)
    bank = layer._bank
    x = torch.randn(2, 3, 8, 8)
    out = model(x)
    assert not bank.active and not bank._kernels  # closed and emptied after the forward
    out.sum().backward()
    model(x).sum().backward()  # a second forward and backward without a step: fresh kernels, no stale graph
    assert layer(torch.randn(1, layer.cin, 8, 8)).shape[1] == layer.cout  # a layer called alone: its own call


def test_the_banks_output_layers_group_equal_shapes_wherever_they_sit():
    from methods.kernelbank import _outputs

    torch.manual_seed(0)
    shapes = [(4, 3), (5, 3), (4, 3), (4, 3), (6, 3)]  # the (4, 3) nets not in one run
    weights = [torch.randn(s) for s in shapes]
    biases = [torch.randn(s[0]) for s in shapes]
    h = torch.randn(len(shapes), 7, 3)
    for w, b, out, hb in zip(weights, biases, _outputs(weights, biases, h), h):
        torch.testing.assert_close(out, torch.addmm(b.unsqueeze(1), w, hb.t()))
