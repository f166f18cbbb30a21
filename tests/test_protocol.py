"""The protocol's early stopping: plateau decays, the stop, the cap, what the run file records, resume."""

from __future__ import annotations

import pytest
import torch

import bench.run.protocol as protocol
import methods
from bench.base import UserError
from bench.run.config import RunConfig, TrainConfig
from bench.run.protocol import stalled
from datasets import get_dataset
from methods import hooks
from methods.task import TaskSpec

TINY = {"arch": "flexnet3", "width": 4, "dropout": 0.0}


def _history(vals, decays=()):
    return [{"epoch": i, "val": v, **({"lr_decay": True} if i in decays else {})} for i, v in enumerate(vals)]


def test_stalled_counts_from_the_best_epoch_or_the_last_decay():
    assert not stalled([], -1, 2)
    assert not stalled(_history([10, 20, 30]), best_epoch=2, patience=2)
    assert stalled(_history([10, 20, 30, 30, 30]), best_epoch=2, patience=2)  # 2 epochs since the best
    assert not stalled(_history([10, 20, 30, 30, 30], decays={4}), best_epoch=2, patience=2)  # a decay restarts it
    assert stalled(_history([10, 20, 30, 30, 30, 30, 30], decays={4}), best_epoch=2, patience=2)
    assert not stalled(_history([10] * 50), best_epoch=0, patience=0)  # patience 0: never


@pytest.fixture()
def scripted_validation(monkeypatch):
    """Validation metrics that follow a script (then 0), so the plateaus are known in advance."""
    real = protocol.evaluate

    def install(script: list[float]):
        calls = {"n": 0}

        def evaluate(model, dataset, metric, batch_size, device, autocast, **kw):
            out = real(model, dataset, metric, batch_size, device, autocast, **kw)
            if dataset is data_val[0] and calls["n"] < len(script):
                out["metric"], calls["n"] = script[calls["n"]], calls["n"] + 1
            return out

        monkeypatch.setattr(protocol, "evaluate", evaluate)

    data_val = [None]
    return install, data_val


def _train(data, **train):
    cfg = RunConfig("conv", "digits", 0, TINY, {}, TrainConfig(batch_size=64, max_steps_per_epoch=2, warmup_epochs=0,
                                                                min_lr_factor=1.0, lr=1e-2, **train))  # fmt: skip
    return protocol.train_run(cfg, data, "cpu", progress=False)


def test_a_plateau_divides_the_lr_then_a_second_one_stops_the_run(scripted_validation):
    install, data_val = scripted_validation
    data = get_dataset("digits")
    data_val[0] = data.val
    # best at epoch 2; no gain for 2 epochs -> decay after epoch 4; 2 more -> stop after epoch 6
    install([10.0, 20.0, 30.0, 30.0, 25.0, 30.0, 28.0, 40.0, 50.0])
    r = _train(data, epochs=20, patience=2, lr_decays=1)
    assert r["epochs_run"] == 7 and r["epochs_cap"] == 20 and r["stopped_early"] and r["lr_decays"] == 1
    assert r["best_epoch"] == 2
    decayed = [h["epoch"] for h in r["history"] if h.get("lr_decay")]
    assert decayed == [4]
    lrs = [h["lr"] for h in r["history"]]  # the lr an epoch ended with
    assert lrs[:5] == pytest.approx([1e-2] * 5) and lrs[5:] == pytest.approx([1e-3] * 2)


def test_no_patience_trains_to_the_cap(scripted_validation):
    install, data_val = scripted_validation
    data = get_dataset("digits")
    data_val[0] = data.val
    install([50.0, 10.0, 10.0, 10.0, 10.0])
    r = _train(data, epochs=5, patience=0)
    assert r["epochs_run"] == 5 and not r["stopped_early"] and r["best_epoch"] == 0 and r["lr_decays"] == 0
    assert r["threads"] == torch.get_num_threads()


def test_the_best_validation_checkpoint_is_the_one_tested(scripted_validation):
    """Selection is on validation: the test metric reported is the best-validation epoch's model."""
    install, data_val = scripted_validation
    data = get_dataset("digits")
    data_val[0] = data.val
    install([5.0, 99.0, 5.0, 5.0])
    r = _train(data, epochs=4, patience=0)
    assert r["best_epoch"] == 1


def test_patience_and_decays_are_checked():
    with pytest.raises(UserError, match="patience"):
        TrainConfig(patience=-1).validate()
    with pytest.raises(UserError, match="lr_decays"):
        TrainConfig(lr_decays=-2).validate()


def test_layers_groups_with_equal_settings_share_one_optimizer_group_and_train_the_same():
    task = TaskSpec(2, 3, 10, (8, 8))
    torch.manual_seed(0)
    model = methods.build_model("s4d", task, arch="flexnet3", width=4, dropout=0.0)
    twin = methods.build_model("s4d", task, arch="flexnet3", width=4, dropout=0.0)
    twin.load_state_dict(model.state_dict())
    tc = TrainConfig(lr=1e-2, weight_decay=0.1)
    per_layer = hooks.param_groups(model, tc.lr, tc.weight_decay)
    merged = protocol.make_optimizer(model, tc)
    layers = sum(1 for m in model.modules() if hasattr(m, "ssm_parameters"))
    assert layers > 2 and len(per_layer) == 1 + layers  # the rest, and one group per layer
    assert len(merged.param_groups) == 2  # the rest, and the layers' SSM parameters
    assert [id(p) for g in merged.param_groups for p in g["params"]] == [id(p) for g in per_layer for p in g["params"]]
    unmerged = torch.optim.AdamW(hooks.param_groups(twin, tc.lr, tc.weight_decay), fused=True)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    for net, opt in ((model, merged), (twin, unmerged)):
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    # settings that differ keep their groups apart, whatever their values' types
    a, b, c = (torch.nn.Parameter(torch.zeros(1)) for _ in range(3))
    groups = hooks.merge_equal_groups([{"params": [a], "lr": 0.1, "betas": [0.9, 0.99]},
                                       {"params": [b], "lr": 0.01, "betas": [0.9, 0.99]},
                                       {"params": [c], "lr": 0.1, "betas": [0.9, 0.99]}])  # fmt: skip
    assert [[id(p) for p in g["params"]] for g in groups] == [[id(a), id(c)], [id(b)]]
