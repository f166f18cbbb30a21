"""Launchers: local-gpus with CPU stand-ins (and a killed driver), slurm through submitit's local executor."""

import os
import signal
import sys
import textwrap
import time
import types

import pytest

from bench.base import UserError
from bench.cli import main
from bench.launchers import LAUNCHERS, LaunchContext, launch, pool, slurm
from bench.launchers import local_gpus as lg
from bench.run import store
from bench.run.config import RunConfig, TrainConfig

from conftest import start_cli

SMOKE = ["--suite", "smoke", "--methods", "conv", "--datasets", "digits", "--quiet", "--no-report"]


def _records(out):
    records, problems = store.load_runs(out)
    assert not problems
    return records


def _wait_for_group_exit(pgid: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pgid, signal.SIGKILL)
    raise AssertionError("worker processes outlived the driver")


def test_local_gpus_cpu_workers_resume_after_the_driver_is_killed(tmp_path):
    out = tmp_path / "out"
    args = [*SMOKE, "--seeds", "0-3", "--launcher", "local-gpus", "--gpus", "cpu,cpu", "--out", str(out)]
    driver = start_cli(*args, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(store.runs_dir(out).glob("*.json")):
        time.sleep(0.05)
    driver.kill()  # the driver dies hard; its workers finish the run in hand, write it and exit
    driver.communicate(timeout=30)
    _wait_for_group_exit(driver.pid, timeout=60)
    first = {p.name: p.stat().st_mtime_ns for p in store.runs_dir(out).glob("*.json")}
    assert 1 <= len(first) < 4

    rerun = [a if a != "cpu,cpu" else "cpu" for a in args]  # one worker will do
    assert main(rerun) == 0  # only what is missing is run
    records = _records(out)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    assert {r["seed"] for r in records} == set(range(4))  # every run once
    assert all(first[n] == (store.runs_dir(out) / n).stat().st_mtime_ns for n in first)  # finished runs not redone
    assert {r["launcher"]["name"] for r in records} == {"local-gpus"}
    assert {r["launcher"]["slot"] for r in records} <= {0, 1} and {r["launcher"]["gpu"] for r in records} == {"cpu"}
    assert all(r["env"]["device"] == "cpu" and r["flops_fwd"] > 0 for r in records)
    assert not list(store.runs_dir(out).glob("*.tmp"))


def test_slurm_local_cluster_runs_the_smoke_suite(tmp_path, capsys):
    pytest.importorskip("submitit")
    out = tmp_path / "out"
    args = [*SMOKE, "--seeds", "0-1", "--launcher", "slurm", "--slurm-cluster", "local", "--out", str(out)]
    assert main([*args, "--slurm-set", "bogus=1"]) == 2  # a bad job setting stops before anything is submitted
    assert "bad job parameter: Unknown argument 'bogus'" in capsys.readouterr().err
    assert not list((out / "slurm").glob("*.pkl"))
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "2 runs as local jobs" in stdout and "done: 2 ok" in stdout
    records = _records(out)
    assert len(records) == 2 and all(r["status"] == "ok" and r["flops_fwd"] > 0 for r in records)
    assert {r["launcher"]["name"] for r in records} == {"slurm"}
    assert len({r["launcher"]["job_id"] for r in records}) == 2  # one job per run
    logs = list((out / "slurm").iterdir())
    assert main(args) == 0 and "done: 2 cached" in capsys.readouterr().out
    assert list((out / "slurm").iterdir()) == logs  # nothing was submitted again


def test_the_slurm_job_requeues_the_same_call():
    pytest.importorskip("submitit")
    job = slurm.RunJob()
    cfg, ctx = {"method": "conv"}, LaunchContext("out")
    again = job.checkpoint(cfg, ctx)  # what submitit calls on the timeout/preemption signal
    assert again.function is job and again.args == (cfg, ctx)


def test_a_rerun_waits_for_the_jobs_slurm_still_holds(tmp_path):
    class FakeJob:  # stands for submitit.SlurmJob, whose state comes from sacct
        states = {"11_0": "RUNNING", "11_1": "COMPLETED", "12": "PENDING"}

        def __init__(self, folder, job_id):
            self.job_id = job_id

        @property
        def state(self):
            return self.states[self.job_id]

    runs = [RunConfig("conv", "digits", seed) for seed in range(4)]
    marks = tmp_path / "in-flight"
    marks.mkdir()
    for cfg, job_id in zip(runs, ["11_0", "11_1", "12"]):
        (marks / cfg.run_id).write_text(job_id)
    jobs = slurm.in_flight(types.SimpleNamespace(SlurmJob=FakeJob), tmp_path, runs)
    assert {run_id: job.job_id for run_id, job in jobs.items()} == {runs[0].run_id: "11_0", runs[2].run_id: "12"}
    assert sorted(p.name for p in marks.iterdir()) == sorted([runs[0].run_id, runs[2].run_id])  # finished: unmarked


def test_slurm_resources_defaults_then_card_hints_then_flags(tmp_path):
    import methods

    @methods.register_method("t_heavy", resources={"gpus": 2, "time_min": 600, "mem_gb": 64})
    def t_heavy(cin, cout, *, dim, causal, size):
        raise NotImplementedError

    try:
        assert slurm.job_parameters("conv", {}) == dict(slurm.DEFAULTS, name="lksbench-conv")
        hinted = slurm.job_parameters("t_heavy", {})
        assert (hinted["gpus_per_node"], hinted["timeout_min"], hinted["mem_gb"]) == (2, 600, 64)
        given = slurm.job_parameters("t_heavy", {"slurm_time": "1-00:00:00", "slurm_gpus": 1, "slurm_partition": "p",
                                                 "slurm_set": ["account=lab", "mem_gb=32", "qos=high"]})  # fmt: skip
        assert given["timeout_min"] == 1440 and given["gpus_per_node"] == 1 and given["slurm_partition"] == "p"
        assert given["slurm_account"] == "lab" and given["mem_gb"] == 32 and given["slurm_qos"] == "high"
    finally:
        methods.METHODS.unregister("t_heavy")
    assert [slurm.parse_time(t) for t in ["90", "30:30", "4:00:00", "1-12", "1-12:30"]] == [90, 31, 240, 2160, 2190]
    with pytest.raises(UserError, match="--slurm-time"):
        slurm.parse_time("soon")


def test_missing_submitit_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # makes `import submitit` fail
    assert main([*SMOKE, "--launcher", "slurm", "--out", "/nonexistent/never-written"]) == 2
    assert "needs submitit: pip install submitit" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--launcher", "slurmm"], "unknown launcher 'slurmm'. Did you mean slurm"),
        (["--gpus", "0,1"], "--gpus is not an option of --launcher local"),
        (["--launcher", "local-gpus", "--slurm-time", "60"], "--slurm-time is not an option of --launcher local-gpus"),
        (["--launcher", "local-gpus", "--gpus", "zero"], "--gpus expects GPU ids or 'cpu'"),
        (["--launcher", "local-gpus", "--gpus", "cpu", "--device", "cpu"], "choose devices with --gpus"),
    ],
)
def test_bad_launcher_input_is_one_line(args, message, tmp_path, capsys):
    assert main([*SMOKE, "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not store.runs_dir(tmp_path).exists()


def test_gpu_ids_refer_to_the_drivers_visible_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert pool.visible_id("1") == "6"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert pool.visible_id("1") == "1"
    assert lg.parse_gpus("cpu, cpu,cpu") == ["cpu"] * 3
    if not __import__("torch").cuda.is_available():
        with pytest.raises(UserError, match="there is no GPU 0"):
            lg.parse_gpus("0")


PLUGIN = textwrap.dedent("""
    from bench.launchers import register_launcher
    from bench.run.runner import Summary

    SEEN = []

    @register_launcher("t_record", "records what it is given")
    def t_record(runs, ctx):
        SEEN.append((runs, ctx))
        return Summary()
""")


def test_a_third_party_launcher_is_chosen_by_name(tmp_path):
    from bench.launchers import LAUNCHERS

    plugin = tmp_path / "launcher_plugin.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "out"
    done = RunConfig("conv", "digits", 1, {"arch": "flexnet3", "width": 4}, {}, TrainConfig(epochs=1))
    store.write_run(out, {"run_id": done.run_id, "status": "ok", "config": done.to_dict(), "method": "conv",
                          "dataset": "digits", "seed": 1})  # fmt: skip
    todo = RunConfig("conv", "digits", 0, {"arch": "flexnet3", "width": 4}, {}, TrainConfig(epochs=1))
    try:
        assert main(["--plugin", str(plugin), "--launcher", "t_record", "--out", str(out), "--no-report"]) == 0
        seen = LAUNCHERS.get("t_record").obj.__globals__["SEEN"]
        summary = launch("t_record", [todo, done], LaunchContext(str(out), plugins=(str(plugin),)))
    finally:
        LAUNCHERS.unregister("t_record")
    assert len(seen) == 2 and seen[0][1].plugins == (str(plugin),)
    assert seen[1][0] == [todo] and summary.counts == {"cached": 1}  # the driver drops finished runs first


def _pool_slots(monkeypatch, device: str, options: dict, launcher: str = "local"):
    """What `launcher` hands the worker pool (or runs in-process) for `device`, with the GPU simulated."""
    import torch

    import bench.launchers.local as local_module

    seen = {}
    monkeypatch.setattr(local_module, "resolve_device", lambda d: device)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)

    def run_pool(runs, ctx, slots, threads, name):
        seen.update(slots=slots)

    monkeypatch.setattr(local_module, "run_pool", run_pool)
    monkeypatch.setattr(lg, "run_pool", run_pool)
    monkeypatch.setattr(local_module, "run_grid", lambda runs, out, device, **kw: seen.update(in_process=device))
    ctx = LaunchContext("never-written", "auto", options=options)  # (run_pool and run_grid are stand-ins)
    LAUNCHERS.get(launcher).obj([RunConfig("conv", "digits")], ctx)
    return seen


def test_workers_or_runs_per_gpu_put_that_many_runs_on_the_gpu(monkeypatch):
    """On a GPU, `--workers N` (or `--runs-per-gpu N`) is N worker processes on that one GPU, where it was refused."""
    assert _pool_slots(monkeypatch, "cuda", {"workers": "2"}) == {"slots": ["0", "0"]}
    assert _pool_slots(monkeypatch, "cuda:1", {"runs_per_gpu": "4"}) == {"slots": ["1"] * 4}
    assert _pool_slots(monkeypatch, "cuda", {}) == {"in_process": "cuda"}  # the default: one run at a time
    assert _pool_slots(monkeypatch, "cpu", {"workers": "3"}) == {"slots": ["cpu"] * 3}
    slots = _pool_slots(monkeypatch, "cpu", {"gpus": "0,1", "runs_per_gpu": "2"}, "local-gpus")
    assert slots == {"slots": ["0", "0", "1", "1"]}
    for device, options, message in [
        ("cuda", {"workers": "2", "runs_per_gpu": "2"}, "give one"),
        ("cpu", {"runs_per_gpu": "2"}, "use --workers"),
        ("cuda", {"runs_per_gpu": "0"}, "--runs-per-gpu expects a positive integer"),
    ]:
        with pytest.raises(UserError, match=message):
            _pool_slots(monkeypatch, device, options)


def test_runs_sharing_a_gpu_say_so_and_the_cost_table_adds_them_up(tmp_path):
    """Two CPU-slot workers stand in for two runs on one GPU: each record names its sharing, the cost table sums."""
    import pandas as pd

    from bench.report.summary import aggregate, cost_table, runs_frame

    out = tmp_path / "runs"
    assert main([*SMOKE, "--seeds", "0-1", "--launcher", "local-gpus", "--gpus", "cpu", "--runs-per-gpu", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    records = _records(out)
    assert sorted(r["launcher"]["slot"] for r in records) == [0, 1]
    assert all(r["launcher"]["runs_per_gpu"] == 1 for r in records)  # CPU slots share no GPU
    for r in records:  # as two runs on one GPU would record it
        r["launcher"]["runs_per_gpu"] = 2
    cost_table(aggregate(runs_frame(records)), tmp_path)
    cost = pd.read_csv(tmp_path / "cost.csv")
    assert (cost["aggregate_throughput"] == 2 * cost["throughput"]).all()
    assert "samples/s, all runs on the GPU" in (tmp_path / "cost.md").read_text()


def test_after_an_interrupt_a_run_whose_file_was_written_counts_even_without_its_message(tmp_path):
    """A worker stopped between writing its run file and saying so: the file is the truth (the summary counts the
    run, not as cut off); a run begun after the driver stopped reading ('start' left in the queue) too."""
    import queue as queue_module

    from bench.run.runner import Summary

    a, b, c = (RunConfig("conv", "digits", seed=s) for s in range(3))
    by_id = {cfg.run_id: cfg for cfg in (a, b, c)}
    since = time.time() - 1
    for cfg in (a, b):
        store.write_run(tmp_path, {"run_id": cfg.run_id, "config": cfg.to_dict(), "method": "conv",
                                   "dataset": "digits", "seed": cfg.seed, "status": "ok"})  # fmt: skip
    results = queue_module.Queue()
    results.put(("start", 1, b.run_id))  # b: its start and its file, no 'done'
    summary = Summary(interrupted=True, cut_off=[a.label, c.label])
    pool._drain(results, summary, {0: a.run_id, 2: c.run_id}, by_id, tmp_path, since)
    assert summary.counts["ok"] == 2 and summary.cut_off == [c.label]  # c: no file, still cut off
