"""The grid end to end: failures as rows, resume after a kill, determinism, the smoke suite."""

import json
import os
import signal
import textwrap
import time

from bench.run import store
from bench.run.config import RunConfig, TrainConfig
from bench.run.runner import run_grid

from conftest import run_cli, start_cli

FAULTY_PLUGIN = textwrap.dedent("""
    import torch
    from torch import nn
    from methods import register_method
    from methods.conv import Conv

    class Raises(nn.Module):
        def __init__(self, cin, cout, dim, causal):
            super().__init__()
            self.conv = Conv(cin, cout, 3, dim, causal)
        def forward(self, x):
            raise RuntimeError("this method is broken")

    class MakesNaN(Raises):
        def forward(self, x):
            return self.conv(x) * float("nan")

    @register_method("t_raises", description="raises in forward")
    def t_raises(cin, cout, *, dim, causal, size):
        return Raises(cin, cout, dim, causal)

    @register_method("t_nan", description="produces NaN")
    def t_nan(cin, cout, *, dim, causal, size):
        return MakesNaN(cin, cout, dim, causal)
""")


def test_failures_become_rows_and_the_grid_goes_on(tmp_path):
    plugin = tmp_path / "faulty.py"
    plugin.write_text(FAULTY_PLUGIN)
    proc = run_cli("--plugin", str(plugin), "--suite", "smoke", "--methods", "t_raises,t_nan,conv",
                   "--datasets", "digits", "--out", str(tmp_path / "out"), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records, problems = store.load_runs(tmp_path / "out")
    by_method = {r["method"]: r for r in records}
    assert not problems and len(records) == 3
    assert by_method["t_raises"]["status"] == "failed" and "this method is broken" in by_method["t_raises"]["error"]
    assert by_method["t_nan"]["status"] == "diverged" and "nan" in by_method["t_nan"]["error"]
    assert by_method["conv"]["status"] == "ok"
    assert "failed: t_raises on digits" in proc.stdout and "diverged: t_nan on digits" in proc.stdout


def _smoke_cfg(seed=0, **train):
    tc = TrainConfig(epochs=2, batch_size=32, max_steps_per_epoch=5, **train)
    return RunConfig("conv", "digits", seed, {"arch": "flexnet3", "width": 4}, {}, tc)


def test_same_seed_same_metrics_on_cpu(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run_grid([_smoke_cfg(seed=3)], a, "cpu", progress=False)
    run_grid([_smoke_cfg(seed=3)], b, "cpu", progress=False)
    run_grid([_smoke_cfg(seed=4)], b, "cpu", progress=False)
    (ra,), _ = store.load_runs(a)
    rb = {r["seed"]: r for r in store.load_runs(b)[0]}
    keys = ["train_accuracy", "val_accuracy", "test_accuracy", "test_loss", "best_epoch"]
    assert [ra[k] for k in keys] == [rb[3][k] for k in keys]
    assert [h["train_loss"] for h in ra["history"]] == [h["train_loss"] for h in rb[3]["history"]]
    assert rb[4]["test_loss"] != ra["test_loss"]  # the seed matters


def test_run_file_has_what_the_issue_asks(tmp_path):
    run_grid([_smoke_cfg()], tmp_path, "cpu", progress=False)
    (r,), _ = store.load_runs(tmp_path)
    assert r["status"] == "ok" and r["run_id"] == _smoke_cfg().run_id
    for key in ["config", "train_accuracy", "val_accuracy", "test_accuracy", "history", "kernel_sizes", "params",
                "wall_time_s", "env", "best_epoch"]:  # fmt: skip
        assert key in r, key
    assert r["env"]["torch"] and r["env"]["device"] == "cpu"
    assert len(r["history"]) == 2 and r["history"][0]["kernel_sizes"]
    assert RunConfig.from_dict(r["config"]) == _smoke_cfg()  # the file describes the run fully


def test_resume_after_kill_redoes_nothing_finished(tmp_path):
    out = tmp_path / "out"
    args = ["--suite", "smoke", "--methods", "conv", "--datasets", "digits,sdigits", "--seeds", "0-5",
            "--out", str(out), "--quiet", "--no-report"]  # fmt: skip
    proc = start_cli(*args)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(store.runs_dir(out).glob("*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C mid-grid
    stdout, _ = proc.communicate(timeout=60)
    first = {p.name: p.stat().st_mtime_ns for p in store.runs_dir(out).glob("*.json")}
    assert proc.returncode == 130 and "interrupted" in stdout and "rerun the same command to resume" in stdout
    assert 2 <= len(first) < 12
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert f"{len(first)} cached" in again.stdout
    files = list(store.runs_dir(out).glob("*.json"))
    assert len(files) == 12  # every run once, no duplicates
    assert all(first[name] == os.stat(store.runs_dir(out) / name).st_mtime_ns for name in first)  # not redone
    assert not list(store.runs_dir(out).glob("*.tmp"))


def test_force_redoes_finished_runs(tmp_path):
    run_grid([_smoke_cfg()], tmp_path, "cpu", progress=False)
    assert run_grid([_smoke_cfg()], tmp_path, "cpu", progress=False).counts == {"cached": 1}
    assert run_grid([_smoke_cfg()], tmp_path, "cpu", progress=False, force=True).counts == {"ok": 1}


def test_smoke_suite_end_to_end(tmp_path):
    start = time.time()
    proc = run_cli("--suite", "smoke", "--out", str(tmp_path), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    records, problems = store.load_runs(tmp_path)
    assert not problems and records and all(r["status"] == "ok" for r in records), [
        (r["method"], r.get("error")) for r in records if r["status"] != "ok"
    ]
    assert (tmp_path / "tables" / "summary.md").exists() and (tmp_path / "plots" / "accuracy_per_dataset.png").exists()
    assert all("smoke" in r["tags"] for r in records)
    print(f"smoke suite: {len(records)} runs in {time.time() - start:.0f}s")


def test_corrupt_run_file_is_reported_and_skipped(tmp_path):
    run_grid([_smoke_cfg()], tmp_path, "cpu", progress=False)
    (store.runs_dir(tmp_path) / "deadbeef.json").write_text('{"run_id": "dead", "stat')
    (store.runs_dir(tmp_path) / "list.json").write_text(json.dumps([1, 2]))
    records, problems = store.load_runs(tmp_path)
    assert len(records) == 1 and len(problems) == 2 and "deadbeef.json" in problems[0]
    proc = run_cli("report", "--out", str(tmp_path))
    assert proc.returncode == 0 and "deadbeef.json: unreadable run file, skipped" in proc.stdout


def test_run_killed_mid_way_resumes_from_its_last_epoch(tmp_path, monkeypatch):
    """A checkpoint per epoch: the resumed run ends exactly where an uninterrupted one does."""
    from methods import hooks

    cfg = RunConfig("conv", "digits", 1, {"arch": "flexnet3", "width": 4, "dropout": 0.2}, {},
                    TrainConfig(epochs=3, batch_size=64, max_steps_per_epoch=4))  # fmt: skip
    run_grid([cfg], tmp_path / "clean", "cpu", progress=False)
    (clean,), _ = store.load_runs(tmp_path / "clean")

    real, calls = hooks.StepHooks.post_step, []

    def dies_in_epoch_two(self):
        calls.append(1)
        if len(calls) == 6:  # step 2 of epoch 2 (4 steps an epoch)
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(hooks.StepHooks, "post_step", dies_in_epoch_two)
    assert run_grid([cfg], tmp_path / "killed", "cpu", progress=False).interrupted
    assert (tmp_path / "killed" / "checkpoints" / f"{cfg.run_id}.pt").exists()
    monkeypatch.setattr(hooks.StepHooks, "post_step", real)
    run_grid([cfg], tmp_path / "killed", "cpu", progress=False)
    (resumed,), _ = store.load_runs(tmp_path / "killed")
    assert resumed["resumed_at_epoch"] == 1 and clean["resumed_at_epoch"] is None
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in clean["history"]]
    assert resumed["test_accuracy"] == clean["test_accuracy"] and resumed["test_loss"] == clean["test_loss"]
    assert not (tmp_path / "killed" / "checkpoints" / f"{cfg.run_id}.pt").exists()
