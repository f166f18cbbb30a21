"""The cross-resolution protocol end to end on `shapes`: train at 16 px, test at 32 px, fine-tune at 32 px."""

import copy
import json

import pandas as pd
import pytest
import torch
from torch import nn

import datasets
import methods
from bench.base import UserError
from bench.papers import get_suite
from bench.report.paper_tables import build_paper_tables
from bench.run import store
from bench.run.config import RunConfig, TrainConfig
from bench.run.crossres import add_cross_resolution, check_settings
from bench.run.grid import build_grid
from bench.run.protocol import evaluate, train_run
from bench.run.runner import DataCache, execute

from conftest import run_cli

TINY = {"arch": "flexnet3", "width": 4, "dropout": 0.0}
SMALL_SHAPES = {"resolution": 16, "n_train": 120, "n_test": 60}
TRAIN = TrainConfig(epochs=1, batch_size=40, lr=3e-3, warmup_epochs=0.0)


class Rescalable(nn.Module):
    """Global-pool classifier whose conv remembers the ratios it was told (a resolution_change method)."""

    def __init__(self, task, fail_off_size: bool = False):
        super().__init__()
        self.conv, self.head = nn.Conv2d(task.in_channels, 4, 3, padding=1), nn.Linear(4, task.num_classes)
        self.size, self.fail_off_size, self.ratios = task.size, fail_off_size, []

    def change_resolution(self, ratio: float) -> None:
        self.ratios.append(ratio)

    def forward(self, x):
        if self.fail_off_size and tuple(x.shape[-2:]) != tuple(self.size):
            raise RuntimeError("this layer only runs at its training size")
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


@pytest.fixture(autouse=True, scope="module")
def stand_in_methods():
    """Registered for this module only, so the registry-wide conformance tests never see them."""
    methods.register_method("_rescalable", kind="model", dims=(2,), causal=False, resolution_change=True)(Rescalable)
    methods.register_method("_fixed_size", kind="model", dims=(2,), causal=False)(
        lambda task: Rescalable(task, fail_off_size=True)
    )
    yield
    methods.METHODS.unregister("_rescalable")
    methods.METHODS.unregister("_fixed_size")


def _cfg(method, model=None, finetune=1):
    return RunConfig(method, "shapes", 0, model or {}, SMALL_SHAPES, TRAIN,
                     crossres={"target": 32, "finetune_epochs": finetune})  # fmt: skip


def _eval(model, data) -> float:
    return evaluate(model, data.test, "accuracy", 256, "cpu", lambda: torch.autocast("cpu", enabled=False))["metric"]


def _trained(cfg):
    data16 = datasets.get_dataset("shapes", seed=0, **SMALL_SHAPES)
    results = train_run(cfg, data16, "cpu", progress=False)
    data32 = datasets.get_dataset("shapes", seed=0, **{**SMALL_SHAPES, "resolution": 32})
    assert data32.test[0][0].shape == (3, 32, 32)
    return results.pop("model"), results, data16, data32


def test_discrete_kernels_keep_their_size_and_ootb_is_the_32px_test_accuracy():
    cfg = _cfg("conv", {**TINY, "kernel_size": 3}, finetune=0)
    model, results, data16, data32 = _trained(cfg)
    expected = _eval(copy.deepcopy(model), data32)
    record = {"test_accuracy": results["test_accuracy"]}
    add_cross_resolution(cfg, model, data16, record, "cpu")
    cr = record["crossres"]
    assert cr["source"] == results["test_accuracy"] and cr["ootb"] == expected
    assert cr["delta"] == pytest.approx(cr["ootb"] - cr["source"])
    assert (cr["source_resolution"], cr["target_resolution"], cr["treatment"]) == (16, 32, "same discrete kernels")
    assert set(cr["kernel_sizes_target"].values()) == {3.0} and "finetuned" not in cr


def test_fine_tuning_continues_the_rescaled_model_at_the_target():
    cfg = _cfg("_rescalable", finetune=2)
    model, results, data16, data32 = _trained(cfg)
    untouched = copy.deepcopy(model)
    record = {"test_accuracy": results["test_accuracy"]}
    add_cross_resolution(cfg, model, data16, record, "cpu")
    cr = record["crossres"]
    assert model.ratios == [2.0] and cr["treatment"] == "change_resolution(2) on 1 layers"
    assert cr["finetune_epochs"] == 2 and len(cr["finetune_history"]) == 2
    assert cr["finetuned"] == _eval(model, data32)  # the selected fine-tuned checkpoint, tested at 32 px
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), untouched.state_dict().values()))


def test_runner_rescales_methods_that_can_change_resolution():
    record = execute(_cfg("_rescalable", finetune=0), "cpu", DataCache(None), progress=False)
    assert record["status"] == "ok", record.get("error")
    cr = record["crossres"]
    assert cr["treatment"] == "change_resolution(2) on 1 layers" and "finetuned" not in cr
    assert cr["source"] == record["test_accuracy"] and isinstance(cr["ootb"], float)
    assert record["flops_fwd"] > 0  # the post-training steps before it ran too
    json.dumps(record, default=str)  # the run file can hold it


def test_a_layer_that_fails_at_the_target_keeps_the_run_and_the_error():
    record = execute(_cfg("_fixed_size"), "cpu", DataCache(None), progress=False)
    assert record["status"] == "ok" and isinstance(record["test_accuracy"], float)
    assert record["crossres"]["error"] == "RuntimeError: this layer only runs at its training size"
    assert "ootb" not in record["crossres"]


def test_settings_are_checked():
    assert check_settings({"target": 32}) == {"target": 32, "finetune_epochs": 0}
    with pytest.raises(UserError, match="unknown setting.*tagret"):
        check_settings({"tagret": 32})
    with pytest.raises(UserError, match="crossres.target"):
        check_settings({"finetune_epochs": 3})


def test_the_offline_suite_carries_its_protocol_into_every_run():
    grid = build_grid(get_suite("crossres-shapes"), methods_sel=["conv", "njet"], budget=0.5)
    assert grid.runs and all(r.crossres["target"] == 32 and r.data["resolution"] == 16 for r in grid.runs)
    assert all(r.tags == ("suite:crossres-shapes", "budget") and r.budget == 0.5 for r in grid.runs)


def test_cli_trains_at_16_tests_at_32_fine_tunes_and_tabulates(tmp_path):
    res = run_cli("--suite", "crossres-shapes", "--methods", "conv", "--budget", "0.1", "--set", "model.width=4",
                  "--set", "data.n_train=120", "--set", "data.n_test=60", "--out", str(tmp_path), "--quiet",
                  "--no-report")  # fmt: skip
    assert res.returncode == 0, res.stderr
    (run,) = store.load_runs(tmp_path)[0]
    assert run["epochs_run"] == 1 and run["crossres"]["finetune_epochs"] == 1  # 6 and 2 epochs, times the budget
    build_paper_tables([run], tmp_path / "tables")  # the report's tables, without its plots
    table = pd.read_csv(tmp_path / "tables" / "crossres-shapes.csv")
    assert list(table["metric"]) == ["source", "ootb", "delta", "finetuned"]
    assert table["ours_mean"].tolist() == [run["crossres"][m] for m in ("source", "ootb", "delta", "finetuned")]
    (row,) = set(table["row"])
    assert row.startswith("conv [budget 0.1, ") and "data.n_train=120" in row and "width=4" in row


# -- the sampling-rate version: sequences change their length ----------------------------------------------
SEQ_TINY = {"arch": "flextcn2", "width": 4, "dropout": 0.0}


def test_sequences_train_at_40_steps_and_are_tested_at_80_zero_shot():
    cfg = RunConfig("conv", "mnist1d", 0, SEQ_TINY, {"num_samples": 500}, TRAIN, crossres={"target": 80})
    source = datasets.get_dataset("mnist1d", seed=0, num_samples=500)
    results = train_run(cfg, source, "cpu", progress=False)
    model = results.pop("model")
    target = datasets.get_dataset("mnist1d", seed=0, num_samples=500, length=80,
                                  statistics=source.info["standardised"])  # fmt: skip
    expected = _eval(copy.deepcopy(model), target)
    record = {"test_accuracy": results["test_accuracy"]}
    add_cross_resolution(cfg, model, source, record, "cpu")
    cr = record["crossres"]  # the source length comes from the task when the run does not set data.length
    assert (cr["source_resolution"], cr["target_resolution"], cr["treatment"]) == (40, 80, "same discrete kernels")
    assert cr["ootb"] == expected and "error" not in cr

    flex = execute(RunConfig("flexconv", "mnist1d", 0, SEQ_TINY, {"num_samples": 500, "length": 40}, TRAIN,
                             crossres={"target": 20}), "cpu", DataCache(None), progress=False)  # fmt: skip
    assert flex["status"] == "ok" and flex["crossres"]["treatment"].startswith("change_resolution(0.5) on ")
    assert isinstance(flex["crossres"]["ootb"], float) and "error" not in flex["crossres"]


def test_cli_crossrate_suite_tabulates(tmp_path):
    res = run_cli("--suite", "crossrate-mnist1d", "--methods", "conv", "--seeds", "0", "--budget", "0.05",
                  "--set", "model.width=4", "--set", "data.num_samples=500", "--out", str(tmp_path), "--quiet",
                  "--no-report")  # fmt: skip
    assert res.returncode == 0, res.stderr
    (run,) = store.load_runs(tmp_path)[0]
    assert run["crossres"]["source_resolution"] == 40 and run["crossres"]["target_resolution"] == 80
    build_paper_tables([run], tmp_path / "tables")
    table = pd.read_csv(tmp_path / "tables" / "crossrate-mnist1d.csv")
    assert table.set_index("metric")["ours_mean"]["ootb"] == run["crossres"]["ootb"]


def test_sr_datasets_are_trained_at_one_rate_and_tested_at_another(tmp_path):
    from test_datasets_fake import fake_char_trajectories

    from bench.run.crossres import size_option, size_ratio

    fake_char_trajectories(tmp_path)
    cfg = RunConfig("flexconv", "char_trajectories", 0, SEQ_TINY, {"sr": 2}, TRAIN, crossres={"target": 1})
    assert size_option(cfg) == "sr" and size_ratio(cfg, 2, 1) == 2.0  # sr 2 -> 1: twice as many steps
    assert (
        size_option(RunConfig("conv", "sc_raw", 0)) == "sr" and size_option(RunConfig("conv", "mnist1d", 0)) == "length"
    )
    record = execute(cfg, "cpu", DataCache(tmp_path), progress=False)
    assert record["status"] == "ok", record.get("error")
    cr = record["crossres"]
    assert (cr["source_resolution"], cr["target_resolution"]) == (2, 1) and "error" not in cr
    assert cr["treatment"].startswith("change_resolution(2) on ") and isinstance(cr["ootb"], float)
