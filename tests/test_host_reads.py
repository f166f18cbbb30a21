"""No host reads inside a training step, for every registered method (issue 23): on a GPU each read
(`item`, `tolist`, `bool(tensor)`, a copy to the CPU) stalls the queue until the device catches up."""

from __future__ import annotations

import copy

import pytest
import torch

import bench.run.protocol as protocol
import methods
from bench.cost import ops_per_step as ops
from bench.run.config import RunConfig, TrainConfig
from datasets import get_dataset
from methods import hooks

CASES = [(m, n) for n in ops.SMALL_NETWORKS for m in methods.list_methods() if ops.applicable(m, n, small=True)]


@pytest.mark.parametrize("method,network", CASES, ids=[f"{m}-{n}" for m, n in CASES])
def test_a_training_step_reads_nothing_back_and_the_post_step_hooks_at_most_once(method, network):
    counted = ops.count(method, network)
    # forward, loss, regularisers, backward and the optimizer step: no host read at all
    assert counted["step_reads"] == 0, counted["read_kinds"]
    # after the step, the sizes the next forward needs arrive in one batched copy, whatever the depth
    assert counted["post_step_reads"] <= 1, counted["read_kinds"]


def test_every_registered_method_is_counted():
    assert {m for m, _ in CASES} == set(methods.list_methods())


def _reads_in_a_run(steps: int) -> int:
    cfg = RunConfig("conv", "digits", 0, {"arch": "flexnet3", "width": 4}, {},
                    TrainConfig(epochs=1, batch_size=16, max_steps_per_epoch=steps, warmup_epochs=0))  # fmt: skip
    data = get_dataset("digits")
    with ops.HostReads() as reads:
        protocol.train_run(cfg, data, "cpu", progress=False)
    return sum(reads.reads.values())


def test_the_protocol_checks_the_loss_once_per_epoch_not_once_per_step():
    # a plain conv reads nothing in its step: what the run reads (evaluation, the epoch's record) must not
    # depend on how many steps the epoch has
    assert _reads_in_a_run(2) == _reads_in_a_run(6)


def test_a_run_whose_loss_becomes_nan_still_diverges(monkeypatch):
    real = protocol.loss_fn
    monkeypatch.setattr(protocol, "loss_fn", lambda out, y, metric: real(out, y, metric) * float("nan"))
    cfg = RunConfig("flexconv", "digits", 0, {"arch": "flexnet3", "width": 4}, {},
                    TrainConfig(epochs=2, batch_size=16, max_steps_per_epoch=3, warmup_epochs=0))  # fmt: skip
    with pytest.raises(protocol.Diverged, match="nan"):
        protocol.train_run(cfg, get_dataset("digits"), "cpu", progress=False)


@pytest.mark.parametrize("method", ["flexconv", "njet", "srf_gauss"])
def test_sizes_follow_the_parameters_after_any_change(method):
    """The cached host values are never stale: after a fused optimizer step without the post-step hooks,
    after an in-place edit, after a refresh. Compared with a copy of the layer, which reads afresh."""
    layer = methods.get_method(method).obj(3, 3, dim=2, causal=False, size=(16, 16))
    layer(torch.randn(1, 3, 16, 16))
    size_params = layer.size_parameters()
    opt = torch.optim.AdamW([{"params": size_params, "lr": 0.3}], fused=True)

    def sizes():
        x = torch.randn(1, 3, 16, 16)
        twin = copy.deepcopy(layer)
        out, fresh = layer(x), twin(x)  # (the forward records the input size where the layer keeps it)
        assert torch.equal(out, fresh)
        return layer.kernel_sizes(), twin.kernel_sizes()

    first = sizes()[0]
    for _ in range(3):
        for p in size_params:
            p.grad = -torch.ones_like(p)  # grow
        opt.step()
        now, fresh = sizes()
        assert now == fresh
    assert now != first  # the sizes did change
    with torch.no_grad():
        for p in size_params:
            p.mul_(0.1)  # shrink in place
    now, fresh = sizes()
    assert now == fresh
    hooks.refresh_host_values([layer])
    assert sizes()[0] == now
