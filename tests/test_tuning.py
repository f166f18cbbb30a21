"""--tune: the expansion into trials, the validation-only selection rule, the report's tables and plot."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from bench.base import UserError
from bench.cli import main
from bench.papers import get_suite
from bench.report.build import build_report
from bench.run import store
from bench.run.config import RunConfig, TrainConfig, parse_tune
from bench.run.grid import build_grid


def test_tune_expands_every_run_into_its_trials():
    space = parse_tune(["train.lr=1e-3,1e-2", "model.kernel_size=3,5"])
    grid = build_grid(get_suite("smoke"), methods_sel=["conv"], datasets_sel=["digits"], seeds=(0, 1), tune=space)
    assert len(grid.runs) == 2 * 4 and len({c.run_id for c in grid.runs}) == 8
    trials = {(c.seed, c.train.lr, c.model["kernel_size"]) for c in grid.runs}
    assert trials == {(s, lr, k) for s in (0, 1) for lr in (1e-3, 1e-2) for k in (3, 5)}
    assert all(c.search == {"train.lr": [1e-3, 1e-2], "model.kernel_size": [3, 5]} for c in grid.runs)
    assert all(RunConfig.from_dict(c.to_dict()) == c for c in grid.runs)  # trials travel to workers and jobs
    plain = RunConfig("conv", "digits")
    assert "search" not in plain.to_dict()  # an untuned run keeps the id it had before searches existed


@pytest.mark.parametrize(
    "space, message",
    [
        (["model.kernel_size=abc,3"], "--tune model.kernel_size: takes int"),
        (["data.length=10,20"], "dataset 'digits' has no option 'length'"),
        (["train.lr=-1,1e-3"], "lr must be > 0"),
        (["train.lr=1e-3,1e-3"], "listed twice"),
    ],
)
def test_bad_searches_are_clear_errors(space, message):
    with pytest.raises(UserError, match=message):
        build_grid(get_suite("smoke"), methods_sel=["conv"], datasets_sel=["digits"], tune=parse_tune(space))


def test_a_method_that_does_not_take_a_searched_key_is_an_error():
    with pytest.raises(UserError, match="method 'logreg' does not take 'kernel_size'"):
        build_grid(get_suite("cpu"), methods_sel=["logreg"], datasets_sel=["mnist1d"],
                   tune=parse_tune(["model.kernel_size=3,5"]))  # fmt: skip


def _trial_records(method="a", dataset="d1", values=None, tags=()):
    """Three learning rates x 3 seeds: validation prefers lr=0.01, test would prefer lr=0.1."""
    values = values or {0.001: (70.0, 72.0), 0.01: (90.0, 85.0), 0.1: (80.0, 95.0)}  # lr: (val, test)
    records = []
    for lr, (val, test) in values.items():
        for seed in range(3):
            cfg = RunConfig(method, dataset, seed, train=TrainConfig(lr=lr), tags=tuple(tags),
                            search={"train.lr": list(values)})  # fmt: skip
            records.append({"run_id": cfg.run_id, "config": cfg.to_dict(), "method": method, "dataset": dataset,
                            "seed": seed, "tags": list(tags), "status": "ok", "metric": "accuracy",
                            "val_accuracy": val + seed * 0.1, "test_accuracy": test + seed * 0.1,
                            "train_accuracy": 99.0, "params": 100})  # fmt: skip
    return records


def test_selection_is_on_validation_and_the_tables_say_so(tmp_path):
    for r in _trial_records() + _trial_records(
        "b", values={0.001: (60.0, 61.0), 0.01: (60.0, 70.0), 0.1: (50.0, 50.0)}
    ):
        store.write_run(tmp_path, r)
    build_report(tmp_path)
    tuned = pd.read_csv(tmp_path / "tables" / "tuned.csv")
    a = tuned[tuned.method == "a"].iloc[0]
    assert a["mean"] == pytest.approx(85.1) and a["n"] == 3  # the val-selected lr=0.01, not the best test (95.1)
    b = tuned[tuned.method == "b"].iloc[0]
    assert b["mean"] == pytest.approx(61.1)  # a tie in validation goes to the first listed value, lr=0.001
    tuning = pd.read_csv(tmp_path / "tables" / "tuning.csv").set_index("method")
    assert tuning.loc["a", "selected"] == "lr=0.01" and tuning.loc["b", "selected"] == "lr=0.001"
    assert tuning.loc["a", "trials"] == 3 and tuning.loc["a", "val spread"] == pytest.approx(20.0)
    assert "train.lr ∈ {0.001, 0.01, 0.1}" in tuning.loc["a", "searched"]
    md = (tmp_path / "tables" / "tuned.md").read_text()
    assert "best mean validation metric" in md and "never the best test" in md
    summary = (tmp_path / "tables" / "summary.md").read_text()
    # the summary holds the validation-selected trials only: never the trial the test set would pick, never bolded
    assert "a [trial lr=0.01]" in summary and "lr=0.1]" not in summary and "**95." not in summary
    trials = (tmp_path / "tables" / "trials.md").read_text()
    assert "not a result" in trials and "**" not in trials and "| a        | d1        | lr=0.1 " in trials
    assert (tmp_path / "plots" / "sensitivity_d1.png").stat().st_size > 1000
    assert "tuned" in (tmp_path / "REPORT.md").read_text()


def test_a_trial_with_a_failed_seed_is_never_selected(tmp_path):
    """lr=0.1 has the best validation on its surviving seed, but its other two diverged: lr=0.01 is selected."""
    records = _trial_records(values={0.01: (80.0, 80.0), 0.1: (90.0, 90.0)})
    for r in records:
        if r["config"]["train"]["lr"] == 0.1 and r["seed"] > 0:
            r.update(status="diverged", error="Diverged: loss became nan", val_accuracy=None, test_accuracy=None)
        store.write_run(tmp_path, r)
    build_report(tmp_path)
    tuning = pd.read_csv(tmp_path / "tables" / "tuning.csv").set_index("method")
    assert tuning.loc["a", "selected"] == "lr=0.01" and tuning.loc["a", "trials with a failed seed"] == 1
    tuned = pd.read_csv(tmp_path / "tables" / "tuned.csv")
    assert tuned.iloc[0]["mean"] == pytest.approx(80.1)


def test_paper_tables_from_the_selection_are_titled_and_marked(tmp_path):
    grid = build_grid(get_suite("cpu"), methods_sel=["logreg"], datasets_sel=["mnist1d"],
                      tune=parse_tune(["train.lr=1e-3,1e-2"]))  # fmt: skip
    for cfg in grid.runs:
        val = 30.0 if cfg.train.lr == 1e-2 else 20.0
        store.write_run(tmp_path, {"run_id": cfg.run_id, "config": cfg.to_dict(), "method": cfg.method,
                                   "dataset": cfg.dataset, "seed": cfg.seed, "tags": list(cfg.tags), "status": "ok",
                                   "metric": "accuracy", "val_accuracy": val, "test_accuracy": val + 1,
                                   "params": 410})  # fmt: skip
    build_report(tmp_path)
    text = (tmp_path / "tables" / "mnist1d-tuned.md").read_text()
    assert "tuned: each row the trial selected on validation over train.lr ∈ {0.001, 0.01}" in text
    assert "| Logistic regression [selected lr=0.01] |" in text and "31.00" in text
    assert not (tmp_path / "tables" / "mnist1d.md").exists()  # no untuned runs: no untuned table


def test_tune_through_the_worker_pool_and_resume(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine: CPU workers are asked for
    args = ["--suite", "smoke", "--methods", "conv,njet", "--datasets", "digits", "--tune", "train.lr=1e-3,1e-2",
            "--out", str(tmp_path), "--quiet", "--workers", "2", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    records, _ = store.load_runs(tmp_path)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    assert (tmp_path / "tables" / "tuned.md").exists()
    capsys.readouterr()
    assert main(args) == 0
    assert "done: 4 cached" in capsys.readouterr().out  # trials are ordinary runs: a rerun finds them


@pytest.mark.parametrize(
    "launcher",
    [["--launcher", "local-gpus", "--gpus", "cpu,cpu"], ["--launcher", "slurm", "--slurm-cluster", "local"]],
    ids=["local-gpus", "slurm-local"],
)
def test_tune_through_the_other_launchers(tmp_path, capsys, launcher):
    if launcher[1] == "slurm":
        pytest.importorskip("submitit")
    args = ["--suite", "smoke", "--methods", "conv", "--datasets", "digits", "--tune", "train.lr=1e-3,1e-2",
            "--out", str(tmp_path), "--quiet", *launcher]  # fmt: skip
    assert main(args) == 0
    records, _ = store.load_runs(tmp_path)
    assert sorted(r["config"]["train"]["lr"] for r in records) == [1e-3, 1e-2]
    assert all(r["status"] == "ok" and r["launcher"]["name"] == launcher[1] for r in records)
    assert "| conv" in (tmp_path / "tables" / "tuned.md").read_text()  # the selection reached the report
    capsys.readouterr()
    assert main(args) == 0 and "done: 2 cached" in capsys.readouterr().out
