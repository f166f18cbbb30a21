"""torch.compile of the training step (bench/run/fastpath.py): fixed-shape models trace whole, FlexConv's crop is
bucketed so a growing mask recompiles only at bucket changes, with the math unchanged; train.compile is part of the
run's configuration."""

from __future__ import annotations

import math

import pytest
import torch

import methods
from bench.run import fastpath
from bench.run.config import RunConfig, TrainConfig
from methods import hooks
from methods.flexconv import FlexConv
from methods.functional import bucket_size, bucketed_crop
from methods.task import TaskSpec

# methods whose model keeps its shapes whatever its parameters (so the compiled step never recompiles);
# the others declare `variable_shape` layers: FlexConv and its variants and CCNN (bucketed), N-Jet, SRF
FIXED_SHAPE = {
    "ckconv", "ckconv_magnet", "cnn1d_mnist1d", "conv", "conv33", "dau", "dcls", "dcn_sigma", "deformable", "dilated", "gru",
    "logreg", "mlp", "resnet10", "resnet110", "resnet18", "resnet20", "resnet32", "resnet44", "resnet56", "s4d",
    "smpconv", "tcn",
}  # fmt: skip
NOT_TRACED = {"gru": "torch.compile does not trace nn.GRU (dynamo's allow_rnn is off): it runs eagerly"}


def small_model(name: str, dim: int):
    task = TaskSpec(dim, 3, 10, 16 if dim == 1 else (8, 8), causal=dim == 1)
    if methods.skip_reason(name, task):
        task = TaskSpec(dim, 3, 10, task.size, causal=not task.causal)
    accepted = methods.accepted_hparams(name)
    hp = {"width": 4, "arch": "flexnet3" if dim == 2 else "flextcn2"}
    torch.manual_seed(0)
    model = methods.build_model(name, task, **{k: v for k, v in hp.items() if accepted is None or k in accepted})
    return model, torch.randn(2, *task.input_shape)


class Counting:
    """A torch.compile backend that runs the traced graph as is (no code generation) and counts graphs."""

    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


def test_the_fixed_shape_methods_are_the_models_without_variable_shape_layers():
    fixed = set()
    for name in methods.list_methods():
        model, _ = small_model(name, methods.card_of(name).dims[-1])
        if not fastpath.variable_shapes(model):
            fixed.add(name)
    assert fixed == FIXED_SHAPE


@pytest.mark.parametrize("name", sorted(FIXED_SHAPE - set(NOT_TRACED)))
def test_a_fixed_shape_model_compiles_whole(name):
    """fullgraph=True: one graph for the training forward, no graph break (a host read, an untraceable op)."""
    torch._dynamo.reset()
    dim = 1 if 1 in methods.card_of(name).dims else 2
    model, x = small_model(name, dim)
    model.train()
    backend = Counting()
    out = torch.compile(model, fullgraph=True, backend=backend)(x)
    out.float().sum().backward()
    assert backend.graphs == 1


def test_bucket_sizes_grow_two_per_octave():
    sizes = [bucket_size(n) for n in range(1, 200)]
    assert all(s >= n for n, s in zip(range(1, 200), sizes))
    assert all(s <= 1.5 * n for n, s in zip(range(1, 200), sizes))
    assert sorted(set(sizes))[:10] == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
    assert bucketed_crop([(11, 22)], (33,), causal=False) == [(10, 23)]  # 5 taps a side -> 6 (11 -> 13 taps)
    assert bucketed_crop([(9, 1024)], (1024,), causal=True) == [(1024 - 1024, 1024)]  # 1015 -> capped at 1024
    assert bucketed_crop([(1019, 1024)], (1024,), causal=True) == [(1018, 1024)]  # 5 -> 6 taps, into the past


def layer(causal: bool, seed: int) -> FlexConv:
    torch.manual_seed(seed)
    if causal:
        return FlexConv(2, 3, dim=1, causal=True, size=100)
    return FlexConv(2, 3, dim=2, causal=False, size=(33, 41))


@pytest.mark.parametrize("causal", [False, True])
def test_a_bucketed_flexconv_computes_what_it_computes_unbucketed(causal):
    """Over masks from narrow to wider than the grid (and off-centre), the bucketed layer samples a larger
    crop whose extra taps are exactly zero: the same output and gradients as the unbucketed layer."""
    grown = 0
    for i, width in enumerate([0.01, 0.05, 0.075, 0.11, 0.16, 0.2, 0.26, 0.31, 0.5, 0.9, 1.3]):
        plain, bucketed = layer(causal, i), layer(causal, i)
        for m in (plain, bucketed):
            with torch.no_grad():
                m.mask_width.copy_(torch.linspace(width, 0.7 * width, m.dim))
                m.mask_mean.add_(0.0 if causal else 0.13 * (i % 3 - 1))
        bucketed.bucket_shapes(True)
        crop, sampled = plain.crop(), bucketed.sampling_crop()
        assert bucketed.crop() == crop and sampled == bucketed_crop(crop, plain.grid, causal)
        grown += sampled != crop
        small, big = plain.sample_kernel(), bucketed.sample_kernel()
        inner = tuple(slice(a - s, b - s) for (a, b), (s, _) in zip(crop, sampled))
        torch.testing.assert_close(big[(..., *inner)], small, rtol=0, atol=0)
        outside = big.detach().clone()
        outside[(..., *inner)] = 0
        assert not outside.any()  # every tap outside crop() is exactly zero
        x = torch.randn(2, 2, *((100,) if causal else (33, 41)))
        out_plain, out_bucketed = plain(x), bucketed(x)
        atol = 1e-5 * out_plain.abs().max().item()  # float rounding: another kernel size sums in another order
        torch.testing.assert_close(out_bucketed, out_plain, rtol=1e-5, atol=atol)
        out_plain.square().sum().backward()
        out_bucketed.square().sum().backward()
        for (name, p), q in zip(plain.named_parameters(), bucketed.parameters()):  # to float rounding of sums
            scale = p.grad.abs().max().item()
            torch.testing.assert_close(
                q.grad, p.grad, rtol=1e-4, atol=1e-5 * scale, msg=lambda m, name=name: f"{name}: {m}"
            )
    assert grown >= 3  # the check covered crops the buckets actually grew


def test_flexconv_recompiles_only_when_a_crop_crosses_a_bucket():
    """An epoch of growing masks: the compiled training forward recompiles at bucket changes, never in between."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Sequential(*(FlexConv(2, 2, dim=2, causal=False, size=(32, 32)) for _ in range(2)))
    x = torch.randn(2, 2, 32, 32)
    backend = Counting()
    forward = fastpath.train_forward(model, "model", backend=backend)
    step_hooks = hooks.StepHooks(model)
    model.train()
    seen, crops, changes = [], set(), []
    for width in torch.linspace(0.05, 0.45, 20).tolist():
        with torch.no_grad():  # the optimizer step, as if each layer's mask grew at its own pace
            for i, m in enumerate(model):
                m.mask_width.fill_(width * (1 + 0.3 * i))
        step_hooks.post_step()  # what the protocol calls after the optimizer step
        state = tuple(tuple(m.sampling_crop()) for m in model)
        crops.add(tuple(tuple(m.crop()) for m in model))
        before = backend.graphs
        forward(x).sum().backward()
        changes.append((state != (seen[-1] if seen else None), backend.graphs > before))
        seen.append(state)
    assert all(changed for changed, recompiled in changes if recompiled)  # a recompile only at a bucket change
    buckets = len(set(seen))
    assert 3 <= buckets < len(crops)  # the buckets changed, less often than the crops
    assert 1 <= backend.graphs <= buckets


def test_auto_compiles_on_cuda_the_models_whose_shapes_are_fixed_or_bucketed():
    conv, _ = small_model("conv", 2)
    flex, _ = small_model("flexconv", 2)
    njet, _ = small_model("njet", 2)
    assert [fastpath.compile_mode("auto", "cuda", m) for m in (conv, flex, njet)] == ["graph", "graph", "off"]
    assert [fastpath.compile_mode("auto", "cpu", m) for m in (conv, flex, njet)] == ["off"] * 3
    assert (
        fastpath.compile_mode("off", "cuda", conv) == "off" and fastpath.compile_mode("model", "cpu", njet) == "model"
    )
    assert fastpath.compile_mode("auto", "cuda", conv, deterministic=True) == "off"


def test_train_compile_is_in_the_run_id_only_when_it_is_not_auto():
    cfg = RunConfig("conv", "digits")
    assert "compile" not in cfg.to_dict()["train"]
    off = RunConfig("conv", "digits", train=TrainConfig(compile="off"))
    assert off.run_id != cfg.run_id and RunConfig.from_dict(off.to_dict()) == off
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(Exception, match="compile must be one of"):
        TrainConfig(compile="fast").validate()
    assert math.isfinite(len(cfg.run_id))


def test_the_protocol_trains_through_the_compiled_forward_and_records_the_mode(monkeypatch):
    """train.compile=model: every training step calls the compiled model (one trace; evaluation stays eager), the
    run trains what the eager run trains, and the record says which mode ran."""
    import bench.run.protocol as protocol
    from datasets import get_dataset

    data = get_dataset("digits", seed=0)
    real_compile, backend, calls = torch.compile, Counting(), []

    def compile_counting(model, **options):
        compiled = real_compile(model, backend=backend)

        def call(x):
            calls.append(model.training)
            return compiled(x)

        return call

    monkeypatch.setattr(torch, "compile", compile_counting)
    torch._dynamo.reset()
    train = TrainConfig(epochs=2, batch_size=64, max_steps_per_epoch=3)
    runs = {}
    for mode in ("off", "model"):
        hp = {"arch": "flexnet3", "width": 4, "dropout": 0.0}  # (compiled, dropout draws from another stream)
        cfg = RunConfig("conv", "digits", 0, hp, {}, replace_train(train, mode))
        runs[mode] = protocol.train_run(cfg, data, "cpu", progress=False)
    assert runs["off"]["compile"] == "off" and runs["model"]["compile"] == "model"
    assert calls == [True] * 6 and backend.graphs == 1  # 2 epochs x 3 steps, all training, one trace
    for key in ("train_loss", "val"):
        got, want = [h[key] for h in runs["model"]["history"]], [h[key] for h in runs["off"]["history"]]
        assert got == pytest.approx(want, rel=1e-4, abs=1e-5)


def replace_train(train: TrainConfig, mode: str) -> TrainConfig:
    from dataclasses import replace

    return replace(train, compile=mode)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["conv", "flexconv"])
def test_cuda_graph_steps_train_what_eager_steps_train(name):
    """train.compile=graph on CUDA (inductor + CUDA graphs, FlexConv bucketed): 8 protocol steps end where eager ones do."""
    from bench.run.protocol import loss_fn, make_optimizer

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch._dynamo.reset()
    finals = []
    for mode in ("off", "graph"):
        torch.manual_seed(0)
        model, x = small_model(name, 2)
        model, x = model.cuda().train(), x.cuda()
        y = torch.tensor([1, 7], device="cuda")
        forward, optimizer = fastpath.train_forward(model, mode), make_optimizer(model, TrainConfig())
        step_hooks = hooks.StepHooks(model)
        for _ in range(8):
            loss = loss_fn(forward(x), y, "accuracy")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step_hooks.post_step()
        finals.append([p.detach().clone() for p in model.parameters()])
    for got, want in zip(*finals[::-1]):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)
