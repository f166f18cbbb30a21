"""A shared results folder is safe (issue 21): no code runs from a checkpoint or a data file someone planted,
a full disk stops the grid cleanly and a rerun resumes, a cache file that holds something else is regenerated,
and the tests that need the CPU say so (they pass on a machine with a GPU too)."""

from __future__ import annotations

import errno
import pickle
import random
import time

import numpy as np
import pytest
import torch

from bench.base import DiskFull
from bench.cli import main
from bench.run import checkpoint, store
from bench.run.config import RunConfig, TrainConfig
from bench.run.runner import DataCache, checkpoint_path, run_grid, run_one

from conftest import run_cli

GRID = ["--suite", "smoke", "--methods", "conv", "--datasets", "digits", "--seeds", "0-3", "--quiet", "--no-report",
        "--device", "cpu"]  # fmt: skip


def _cfg(seed=0, epochs=2):
    return RunConfig("conv", "digits", seed, {"arch": "flexnet3", "width": 4}, {},
                     TrainConfig(epochs=epochs, batch_size=32, max_steps_per_epoch=3))  # fmt: skip


class Payload:
    """Unpickled, it would write `marker`: what a planted file could do with os.system."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('the payload ran')",)


# -- 1. checkpoints and data files hold plain data ----------------------------------------------------------


def test_a_planted_pickle_in_a_checkpoint_never_runs_and_the_run_restarts(tmp_path, capsys):
    cfg, marker = _cfg(), tmp_path / "payload-ran"
    path = checkpoint_path(tmp_path, cfg.run_id)
    path.parent.mkdir(parents=True)
    torch.save({"model": Payload(marker), "loop": {}}, path)
    summary = run_grid([cfg], tmp_path, "cpu", progress=False)
    assert not marker.exists()  # torch.load(weights_only=False) would have run it
    assert summary.counts["ok"] == 1 and not summary.interrupted
    (record,), _ = store.load_runs(tmp_path)
    assert record["status"] == "ok" and record["resumed_at_epoch"] is None and record["epochs_run"] == 2
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if "is damaged" in line]
    assert len(said) == 1 and "not plain data, refused unread" in said[0] and "GLOBAL exec" in said[0]
    assert "weights_only=False" not in out  # torch's advice to load it unsafely is not passed on
    assert not path.exists()


def test_a_checkpoint_is_plain_data_and_restores_every_rng(tmp_path):
    """The file loads with weights_only=True, and torch's, numpy's and Python's generators continue exactly."""
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    gen = torch.Generator().manual_seed(5)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # numpy now holds a cached Gaussian: part of its state
    loop = {"best": 0.5, "best_state": model.state_dict(), "history": [{"epoch": 0, "val": 0.5}], "samples": 7}
    path = tmp_path / "c.pt"
    checkpoint.save(path, model, optimizer, schedule, gen, loop)
    state = torch.load(path, weights_only=True)  # format 1 held numpy arrays and tuples: refused here
    assert state["format"] == checkpoint.FORMAT
    expected = (
        random.random(),
        np.random.standard_normal(),
        np.random.rand(),
        torch.rand(2),
        torch.rand(2, generator=gen),
    )
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    gen.manual_seed(9)
    restored = checkpoint.load(path, model, optimizer, schedule, gen)
    assert restored["samples"] == 7 and restored["history"] == loop["history"]
    again = (
        random.random(),
        np.random.standard_normal(),
        np.random.rand(),
        torch.rand(2),
        torch.rand(2, generator=gen),
    )
    assert expected[:3] == again[:3] and all(torch.equal(a, b) for a, b in zip(expected[3:], again[3:]))


def test_a_planted_pickle_in_a_cifar_batch_never_runs(tmp_path):
    from test_datasets_fake import fake_cifar

    from bench.base import UserError
    from datasets import get_dataset

    fake_cifar(tmp_path)
    marker = tmp_path / "payload-ran"
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(pickle.dumps({"data": Payload(marker)}))
    with pytest.raises(UserError, match=r"cannot read .*data_batch_2 \(UnpicklingError: builtins.exec is not allowed"):
        get_dataset("cifar10", data_root=tmp_path, download=False)
    assert not marker.exists()


# -- 2. a full disk ------------------------------------------------------------------------------------------


def _fills_after(out, n_runs: int, only: str | None = None):
    """A writer for store._write_all that finds the disk full once `n_runs` run files are there
    (`only`: the suffix of the files it refuses, e.g. ".json" for run files, ".pt" for checkpoints)."""
    real = store._write_all

    def write(f, data, path):
        if len(list(store.runs_dir(out).glob("*.json"))) >= n_runs and (only is None or path.suffix == f".{only}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, data, path)

    return write


@pytest.mark.parametrize("refused", ["pt", "json"], ids=["checkpoint", "run-file"])
def test_a_full_disk_stops_the_grid_in_one_line_and_a_rerun_completes(tmp_path, capsys, monkeypatch, refused):
    out = tmp_path / "out"
    args = [*GRID, "--out", str(out), "--workers", "1"]
    monkeypatch.setattr(store, "_write_all", _fills_after(out, 2, refused))
    assert main(args) == 2
    captured = capsys.readouterr()
    folder = out / ("checkpoints" if refused == "pt" else "runs")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err + captured.out
    assert f"no space left on the device of {folder} (writing " in captured.err and "needs" in captured.err
    assert "rerun the same command to resume" in captured.err
    records, problems = store.load_runs(out)
    assert not problems and len(records) == 2 and all(r["status"] == "ok" for r in records)  # no failed row
    assert not list(out.rglob("*.tmp"))  # the refused write left no temporary file
    assert len(list((out / "checkpoints").glob("*.pt"))) == (refused == "json")  # the trained run kept its state

    monkeypatch.undo()  # space is freed
    assert main(args) == 0
    assert "done: 2 cached, 2 ok" in capsys.readouterr().out
    records, _ = store.load_runs(out)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    resumed = [r for r in records if r["resumed_at_epoch"]]
    assert len(resumed) == (refused == "json")  # the run whose file could not be written is not trained again


FULL_DISK_PLUGIN = """
import errno
from pathlib import Path

from bench.run import store

real = store._write_all


def full(f, data, path):  # the disk is full once {n} run files are there
    if len(list(Path({runs!r}).glob("*.json"))) >= {n}:
        raise OSError(errno.ENOSPC, "No space left on device")
    real(f, data, path)


store._write_all = full
"""


def test_a_full_disk_under_the_worker_pool_is_one_line_and_a_rerun_completes(tmp_path):
    """Workers are separate processes: the full disk comes in through a --plugin, loaded in each of them."""
    out = tmp_path / "out"
    plugin = tmp_path / "full_disk.py"
    plugin.write_text(FULL_DISK_PLUGIN.format(runs=str(out / "runs"), n=2))
    proc = run_cli(*GRID, "--out", str(out), "--workers", "2", "--plugin", str(plugin))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output and "died" not in output and "failed" not in output
    # (Python's resource tracker may warn about a semaphore of a worker stopped while importing sklearn: not ours)
    noise = ("resource_tracker", "warnings.warn(")
    lines = [line for line in proc.stderr.splitlines() if not any(n in line for n in noise)]
    assert len(lines) == 1 and f"no space left on the device of {out}" in lines[0]
    records, problems = store.load_runs(out)
    assert not problems and 2 <= len(records) < 4 and all(r["status"] == "ok" for r in records)

    assert main([*GRID, "--out", str(out), "--workers", "1"]) == 0  # space freed (one process will do)
    records, _ = store.load_runs(out)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)


def test_a_full_disk_under_slurm_jobs_is_no_failure_and_a_rerun_completes(tmp_path, capsys, monkeypatch):
    """SLURM jobs run on their own: each that finds the disk full is counted as such (no failed row), exit 2."""
    pytest.importorskip("submitit")
    out = tmp_path / "out"
    plugin = tmp_path / "full_disk.py"
    plugin.write_text(FULL_DISK_PLUGIN.format(runs=str(out / "runs"), n=1))
    args = [*GRID, "--seeds", "0-1", "--launcher", "slurm", "--slurm-cluster", "local", "--out", str(out)]
    monkeypatch.setattr(store, "_write_all", store._write_all)  # the plugin patches this process too: put it back
    assert main([*args, "--plugin", str(plugin)]) == 2
    monkeypatch.undo()
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "failed" not in captured.out
    assert f"runs found no space left in {out}" in captured.err and "no space left on the device of" in captured.out
    records, _ = store.load_runs(out)
    assert len(records) <= 1 and all(r["status"] == "ok" for r in records)
    assert main([*GRID, "--seeds", "0-1", "--workers", "1", "--out", str(out)]) == 0  # space freed
    records, _ = store.load_runs(out)
    assert len(records) == 2 and all(r["status"] == "ok" for r in records)


def test_a_full_disk_outside_the_writer_is_one_line_too(tmp_path, capsys, monkeypatch):
    """A claim file that cannot be created (no space, no inodes) stops the command the same way."""
    from bench.run import claims

    def full(out, run_id, wait=False):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "claims" / f"{run_id}.lock"))

    monkeypatch.setattr(claims, "claim", full)
    assert main([*GRID, "--out", str(tmp_path), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no space left on the device of {tmp_path / 'claims'}" in err


def test_disk_full_is_raised_by_the_writer_and_the_old_file_stays(tmp_path, monkeypatch):
    path = tmp_path / "runs" / "x.json"
    store.atomic_write(path, b"old")
    monkeypatch.setattr(store, "_write_all", _fills_after(tmp_path, 0))
    with pytest.raises(DiskFull, match=r"of .*runs \(writing x.json needs 1,000 B, .* free\)"):
        store.atomic_write(path, b"n" * 1000)
    assert path.read_bytes() == b"old" and [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_a_full_disk_in_a_run_is_not_a_failed_row(tmp_path, monkeypatch):
    """ENOSPC from anywhere inside training (not only the suite's own writer) stops the grid, records nothing."""
    from bench.run import protocol

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "elsewhere" / "file"))

    monkeypatch.setattr(protocol.checkpoint, "save", full)
    with pytest.raises(DiskFull, match="elsewhere"):
        run_one(_cfg(), tmp_path, "cpu", DataCache(None), since=time.time(), progress=False)
    assert store.status_of(tmp_path, _cfg().run_id) is None


# -- 3. the MNIST-1D cache -------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["other-keys", "wrong-shape", "wrong-dtype"])
def test_a_mnist1d_cache_file_that_holds_something_else_is_regenerated(tmp_path, content):
    from datasets import mnist1d

    length, n = 16, 50
    args = (length, n, mnist1d.DATA_SEED)
    good = mnist1d._generate(*args)
    path = tmp_path / "mnist1d" / f"mnist1d-len{length}-n{n}-seed{mnist1d.DATA_SEED}.npz"
    path.parent.mkdir()
    bad = {
        "other-keys": {"a": np.zeros(3)},
        "wrong-shape": {**good, "x": good["x"][:, :-1]},
        "wrong-dtype": {**good, "y": good["y"].astype(np.float32)},
    }[content]
    np.savez(path, **bad)
    mnist1d.signals.cache_clear()
    data = mnist1d.signals(*args, str(tmp_path))
    assert sorted(data) == sorted(mnist1d.KEYS)
    assert all(np.array_equal(data[k], good[k]) and data[k].dtype == good[k].dtype for k in mnist1d.KEYS)
    with np.load(path) as cached:  # and the file is put right for the next process
        assert sorted(cached.files) == sorted(mnist1d.KEYS) and cached["x"].shape == good["x"].shape
    mnist1d.signals.cache_clear()
