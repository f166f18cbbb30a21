"""Conformance of every registered method (built-ins and plugins) to the method interface.

For each method and each tiny task (1D, 1D causal, 2D): a method whose card rules the task
out says why and refuses to build; otherwise the model keeps the output shape, gives every
trainable parameter a finite gradient, is deterministic under a seed, and, when the card
claims it, is causal and reports kernel sizes / rescales to another resolution. Layer
methods are also checked one layer at a time, built through their factory.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import methods
from bench.base import UserError
from methods import TaskSpec, hooks

# Odd sizes on purpose: channel, class and H/W mix-ups change the shapes. The 2D size is the
# smallest at which no method degenerates at init (FlexConv crops its kernel to the single
# centre tap below 12 px, where its mask parameters have exactly zero gradient).
TASKS = {
    "1d": TaskSpec(dim=1, in_channels=2, num_classes=3, size=16),
    "1d-causal": TaskSpec(dim=1, in_channels=2, num_classes=3, size=16, causal=True),
    "2d": TaskSpec(dim=2, in_channels=3, num_classes=4, size=(12, 14)),
}
TINY = {"width": 4, "dropout": 0.0}  # passed to any method that takes them
BATCH = 4
NAMES = methods.list_methods()
SUPPORTED = [(n, k) for n in NAMES for k, t in TASKS.items() if not methods.skip_reason(n, t)]
UNSUPPORTED = [(n, k) for n in NAMES for k, t in TASKS.items() if methods.skip_reason(n, t)]
LAYERS = [(n, k) for n, k in SUPPORTED if methods.card_of(n).kind == "layer"]
CAUSAL = [n for n in NAMES if not methods.skip_reason(n, TASKS["1d-causal"])]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: more OpenMP threads only wait on each other (100x slower on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_hparams(name: str) -> dict:
    accepted = methods.accepted_hparams(name)
    return {} if accepted is None else {k: v for k, v in TINY.items() if k in accepted}


def build(name: str, task: TaskSpec, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return methods.build_model(name, task, **tiny_hparams(name))


def inputs(task: TaskSpec, seed: int = 1) -> torch.Tensor:
    return torch.randn(BATCH, *task.input_shape, generator=torch.Generator().manual_seed(seed))


def zero_grad_names(model: nn.Module, x: torch.Tensor) -> set[str]:
    model.zero_grad(set_to_none=True)
    out = model(x)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(2))).sum().backward()
    return {n for n, p in model.named_parameters() if p.requires_grad and not p.grad.abs().sum() > 0}


@pytest.mark.parametrize("name", NAMES)
def test_card_is_complete(name):
    card = methods.card_of(name)
    assert card.description and card.paper, "a card needs a description and a paper"
    assert card.dims and set(card.dims) <= {1, 2}
    assert card.causal or card.noncausal
    assert card.kernel_size_unit


@pytest.mark.parametrize("name,key", UNSUPPORTED)
def test_unsupported_task_is_refused_with_the_reason(name, key):
    reason = methods.skip_reason(name, TASKS[key])
    assert isinstance(reason, str) and reason
    with pytest.raises(UserError, match="cannot run on this task"):
        methods.build_model(name, TASKS[key], **tiny_hparams(name))


@pytest.mark.parametrize("name,key", SUPPORTED)
def test_model(name, key):
    """Shape, finiteness, gradients, determinism under a seed, and the card's claims."""
    task = TASKS[key]
    card = methods.card_of(name)
    x = inputs(task)
    model = build(name, task, seed=3).train()
    torch.manual_seed(4)  # dropout and anything else drawn in the forward
    out = model(x)
    assert out.shape == (BATCH, task.num_classes)
    assert torch.isfinite(out).all()

    # same seed, same output; another seed, another model (else the check above is vacuous)
    twin = build(name, task, seed=3).train()
    torch.manual_seed(4)
    assert torch.equal(twin(x), out), "the same seed gave different outputs"
    other = build(name, task, seed=5).train()
    torch.manual_seed(4)
    assert not torch.equal(other(x), out), "the seed has no effect on the model"

    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(2))).sum().backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{pname} got no gradient"
            assert torch.isfinite(p.grad).all(), f"{pname} has a non-finite gradient"
    # Every parameter must reach the output. An exact zero gradient can be legitimate in one
    # mode: in training mode a bias right before batch norm has none (the mean is removed);
    # in eval mode a ReLU may be dead at the one step a causal readout reads. A parameter
    # with a zero gradient in both modes is disconnected.
    dead = {n for n, p in model.named_parameters() if p.requires_grad and not p.grad.abs().sum() > 0}
    if dead:
        dead &= zero_grad_names(model.eval(), x)
    assert not dead, f"parameters with an all-zero gradient in training and eval mode: {sorted(dead)}"

    if card.learned_size:
        sizes = hooks.kernel_sizes(model)
        assert sizes, "learned_size=True but no module reports kernel_sizes()"
        flat = [v for s in sizes.values() for v in (s if isinstance(s, list) else [s])]
        assert all(math.isfinite(v) and v >= 0 for v in flat), sizes
    if card.resolution_change:
        assert hooks.change_resolution(model, 2.0) > 0, "resolution_change=True but no change_resolution() hook"
        bigger = task.at_size(task.size * 2 if task.dim == 1 else tuple(2 * s for s in task.size))
        assert model.eval()(inputs(bigger)).shape == (BATCH, task.num_classes)


def sequence_outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every submodule output that still has the time axis, in execution order."""
    outs = []

    def record(module, args, out):
        if isinstance(out, torch.Tensor) and out.dim() == 3 and out.shape[-1] == x.shape[-1]:
            outs.append(out.detach())

    handles = [m.register_forward_hook(record) for m in model.modules() if m is not model]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return outs


def perturb_after(x: torch.Tensor, t: int) -> torch.Tensor:
    x2 = x.detach().clone()
    x2[..., t + 1 :] += 3 * torch.randn(x2[..., t + 1 :].shape, generator=torch.Generator().manual_seed(6))
    return x2


def assert_causal(before: torch.Tensor, after: torch.Tensor, t: int, what: str) -> None:
    scale = before.abs().max().item() + after.abs().max().item() + 1e-6
    leak = (before[..., : t + 1] - after[..., : t + 1]).abs().max().item()
    assert leak <= 1e-5 * scale, f"{what}: changing inputs after step {t} changed outputs up to step {t} by {leak}"


@pytest.mark.parametrize("name", CAUSAL)
def test_causal_model(name):
    """Every intermediate sequence in the model (eval mode: batch statistics would mix time steps) is causal."""
    task = TASKS["1d-causal"]
    model = build(name, task).eval()
    x = inputs(task)
    t = task.size // 2
    x2 = perturb_after(x, t)
    with torch.no_grad():
        before, after = sequence_outputs(model, x), sequence_outputs(model, x2)
        assert before, "a causal model must compute per-step features somewhere"
        for i, (b, a) in enumerate(zip(before, after)):
            assert_causal(b, a, t, f"sequence output #{i}")
        assert not torch.allclose(model(x), model(x2)), "the last step does not see the last inputs"


@pytest.mark.parametrize("name,key", LAYERS)
def test_layer_contract(name, key):
    """One layer from the factory: same spatial size, cout channels, gradients everywhere, causal if asked."""
    task = TASKS[key]
    entry = methods.get_method(name)
    torch.manual_seed(0)
    lay = entry.obj(3, 5, dim=task.dim, causal=task.causal, size=task.size, **entry.card.defaults)
    x = torch.randn(BATCH, 3, *task.input_shape[1:])
    y = lay(x)
    assert y.shape == (BATCH, 5, *task.input_shape[1:])
    y.square().sum().backward()
    dead = [n for n, p in lay.named_parameters() if p.requires_grad and not p.grad.abs().sum() > 0]
    assert not dead, f"parameters with an all-zero gradient: {dead}"
    if task.causal:
        t = task.size // 2
        x2 = perturb_after(x, t)
        # a layer that normalises its own output (BatchNorm) mixes time steps through batch
        # statistics in training mode, as every model with BatchNorm does: check it as a model is
        lay.train(not getattr(lay, "normalises_output", False))
        with torch.no_grad():
            before, after = lay(x), lay(x2)
        assert_causal(before, after, t, "layer output")
        assert not torch.allclose(before[..., t + 1 :], after[..., t + 1 :]), "future outputs ignore their inputs"


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_claim_only_own_trainable_params(name):
    task = next(t for t in TASKS.values() if not methods.skip_reason(name, t))
    model = build(name, task)
    groups = hooks.param_groups(model, base_lr=1e-3, weight_decay=0.1)
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen)), "a parameter is in two optimizer groups"
    assert set(seen) == {id(p) for p in model.parameters() if p.requires_grad}
    torch.optim.AdamW(groups)  # the groups are valid optimizer input
    for mname, module in model.named_modules():
        if callable(getattr(module, "size_parameters", None)):
            own = {id(p) for p in module.parameters()}
            assert {id(p) for p in module.size_parameters()} <= own, f"{mname}.size_parameters() lists foreign tensors"
