"""The hostile user's table (issue 13): every bad setting fails before training, one results folder is safe
for several processes, and a finished run is never lost."""

from __future__ import annotations

import json
import os
import signal
import stat
import time

import pytest

from bench.base import UserError
from bench.cli import main
from bench.run import checkpoint, store
from bench.run.config import RunConfig, TrainConfig
from bench.run.runner import DataCache, _status_of, run_grid, run_one
from methods import get_method

from conftest import start_cli

SMOKE_DIGITS = ["--suite", "smoke", "--datasets", "digits", "--quiet", "--no-report"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--methods", "conv", "--set", "model.kernel_size=-3"], "--set model.kernel_size=-3: conv on digits cannot be built"),
        (["--methods", "conv", "--set", "model.kernel_size=abc"], "model.kernel_size: takes int, got 'abc'"),
        (["--methods", "conv", "--set", "data.n_train=abc", "--datasets", "shapes"], "data.n_train: takes int"),
        (["--methods", "conv", "--datasets", "mnist1d", "--set", "data.length=abc"], "data.length: takes int"),
        (["--methods", "conv", "--datasets", "mnist1d", "--set", "data.length=100.5"], "takes int, got 100.5"),
        (["--methods", "conv", "--set", "train.lr=1e400"], "expected a finite number"),
        (["--methods", "conv", "--seeds", "99999999999999999999999"], "a seed must be at most"),
        (["--methods", "conv", "--out", ""], "--out names no folder"),
        (["--methods", "conv", "--out", "/proc/lksbench-test"], "cannot write there"),
        (["--methods", "conv", "--out", "/sys/lksbench-test"], "cannot write there"),
    ],
)  # fmt: skip
def test_bad_settings_are_one_line_and_nothing_trains(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default results folder, if anything were written, would be here
    datasets = [] if "--datasets" in args else ["--datasets", "digits"]
    assert main([*args, *datasets, "--suite", "smoke", "--quiet", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "results").exists()


def test_out_that_is_a_file_and_report_of_a_missing_folder(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["--methods", "conv", *SMOKE_DIGITS, "--out", str(tmp_path / "afile")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path / "typo")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_a_huge_seed_range_is_refused_at_once(capsys):
    start = time.perf_counter()
    assert main(["--seeds", "0-100000000", "--dry-run"]) == 2
    assert time.perf_counter() - start < 5 and "more than 100,000 seeds" in capsys.readouterr().err


def test_a_plugin_that_exits_at_import_is_named(tmp_path, capsys):
    plugin = tmp_path / "exits.py"
    plugin.write_text("import sys\nsys.exit(3)\n")
    assert main(["--plugin", str(plugin), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"--plugin {plugin}: exited while being imported (SystemExit: 3)" in err and err.count("\n") == 1


def test_a_factory_refuses_an_unsupported_task_when_called_directly():
    deformable = get_method("deformable").obj

    with pytest.raises(UserError, match="is not causal"):
        deformable(3, 3, dim=1, causal=True, size=10)
    assert deformable(3, 3, dim=1, causal=False, size=10) is not None


def _cfg(seed=0, epochs=2):
    return RunConfig("conv", "digits", seed, {"arch": "flexnet3", "width": 4}, {},
                     TrainConfig(epochs=epochs, batch_size=32, max_steps_per_epoch=3))  # fmt: skip


def test_the_run_file_is_written_before_the_checkpoint_goes(tmp_path, monkeypatch):
    """A kill between the end of training and the run file's write loses nothing: the checkpoint is still there."""
    cfg = _cfg()

    def killed(out, record):
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "write_run", killed)
    with pytest.raises(KeyboardInterrupt):
        run_one(cfg, tmp_path, "cpu", DataCache(None), since=time.time(), progress=False)
    monkeypatch.undo()
    assert (tmp_path / "checkpoints" / f"{cfg.run_id}.pt").exists()
    status, record = run_one(cfg, tmp_path, "cpu", DataCache(None), since=time.time(), progress=False)
    assert status == "ok" and record["resumed_at_epoch"] == 2 and record["epochs_run"] == 2  # nothing retrained
    assert not (tmp_path / "checkpoints" / f"{cfg.run_id}.pt").exists()


def test_a_damaged_checkpoint_is_discarded_and_said(tmp_path, capsys):
    cfg = _cfg()
    path = tmp_path / "checkpoints" / f"{cfg.run_id}.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    summary = run_grid([cfg], tmp_path, "cpu", progress=False)
    assert summary.counts["ok"] == 1
    assert "is damaged" in capsys.readouterr().out
    with pytest.raises(checkpoint.Damaged):
        path.write_bytes(b"torn")
        checkpoint.load(path, None, None, None, None)


def test_a_finished_record_is_never_replaced_by_a_failure_and_files_get_the_umask(tmp_path):
    cfg = _cfg()
    old = os.umask(0o027)
    try:
        run_grid([cfg], tmp_path, "cpu", progress=False)
    finally:
        os.umask(old)
    path = store.run_path(tmp_path, cfg.run_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0o666 & ~0o027, not mkstemp's 0o600
    store.write_run(tmp_path, {"run_id": cfg.run_id, "status": "failed", "error": "late failure"})
    assert json.loads(path.read_text())["status"] == "ok"


def test_run_files_without_a_method_or_with_text_metrics_are_named_and_skipped(tmp_path, capsys):
    run_grid([_cfg()], tmp_path, "cpu", progress=False)
    good = next(store.runs_dir(tmp_path).glob("*.json"))
    record = json.loads(good.read_text())
    (store.runs_dir(tmp_path) / "nomethod.json").write_text(
        json.dumps({k: v for k, v in record.items() if k != "method"})
    )
    (store.runs_dir(tmp_path) / "textmetric.json").write_text(json.dumps({**record, "test_accuracy": "high"}))
    records, problems = store.load_runs(tmp_path)
    assert len(records) == 1 and len(problems) == 2
    assert main(["report", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "nomethod.json: unreadable run file, skipped" in out and "textmetric.json" in out


def test_cpu_out_of_memory_is_stored_as_oom():
    assert (
        _status_of(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"))
        == "oom"
    )
    assert _status_of(MemoryError()) == "oom" and _status_of(ValueError("x")) == "failed"


def test_two_commands_on_one_folder_share_the_grid(tmp_path):
    """Started together: both exit 0, every run is done once (by one of them) and every record is ok."""
    args = [*SMOKE_DIGITS, "--seeds", "0-1", "--workers", "1", "--out", str(tmp_path)]
    a, b = start_cli(*args), start_cli(*args)
    out_a, out_b = a.communicate(timeout=300)[0], b.communicate(timeout=300)[0]
    assert a.returncode == 0 and b.returncode == 0, out_a + out_b
    trained = [line.split("ok  ", 1)[1].split(":")[0] for line in (out_a + out_b).splitlines() if "      ok  " in line]
    records, problems = store.load_runs(tmp_path)
    assert not problems and all(r["status"] == "ok" for r in records)
    assert sorted(trained) == sorted(f"{r['method']} on {r['dataset']} (seed {r['seed']})" for r in records)
    assert len(set(trained)) == len(trained)  # no run trained twice
    assert "done by another process" in out_a + out_b  # each saw the other's runs


def _wait_for(predicate, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_to_the_driver_alone_stops_its_workers_with_a_true_summary(sig, code, tmp_path):
    # --device cpu: a worker pool (with a GPU, --device auto would run one process)
    args = ["--suite", "smoke", "--seeds", "0-9", "--quiet", "--no-report", "--out", str(tmp_path), "--set",
            "train.max_steps_per_epoch=40", "--set", "train.epochs=3", "--device", "cpu"]  # fmt: skip
    driver = start_cli(*args, start_new_session=True)
    _wait_for(lambda: len(list(store.runs_dir(tmp_path).glob("*.json"))) >= 2)
    os.kill(driver.pid, sig)  # the driver alone, not its process group
    output = driver.communicate(timeout=60)[0]
    assert driver.returncode == code, output
    assert "interrupted:" in output and "cut off:" in output and "rerun the same command to resume" in output

    def group_gone():  # the workers stopped too (a zombie resource tracker may linger for a second or two)
        try:
            os.killpg(driver.pid, 0)
        except ProcessLookupError:
            return True
        return False

    _wait_for(group_gone, timeout=20)
    done = int(output.split("interrupted: ")[1].split(" ok")[0])
    records, _ = store.load_runs(tmp_path)
    assert done == len(records) < 2 * 20  # the count is true, and far from the whole grid
