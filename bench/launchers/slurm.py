"""`--launcher slurm`: one SLURM array task per run, through submitit (optional: pip install submitit).

- Runs are grouped by their resources and each group is submitted as one job array. Resources
  come from, in increasing precedence: the defaults below, the method card's `resources` hints
  (gpus, time_min, mem_gb, cpus, partition), and the --slurm-* flags the user gave.
- A job writes its run's file itself. On preemption or timeout submitit calls `RunJob.checkpoint`
  and requeues the job; the run resumes from its last finished epoch (bench/run/checkpoint.py).
- The driver waits and prints one line per run; if it is stopped, the jobs go on. Rerunning the
  same command waits again for the jobs SLURM still holds (marks in <out>/slurm/in-flight/) and
  submits only the runs that are neither finished nor in flight.
- `--slurm-cluster local` runs the same jobs as local processes (submitit's local executor), at
  most --slurm-array-parallelism at once: for trying the path out, and for the tests.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import shutil
import time
from pathlib import Path

import torch

from bench.base import UserError
from bench.launchers import LaunchContext, prepare_worker, register_launcher
from bench.run.config import RunConfig, parse_value
from bench.run.env import resolve_device
from bench.run.runner import DataCache, Summary, run_one, summary_line
from methods import card_of

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = {"timeout_min": 240, "gpus_per_node": 1, "cpus_per_task": 4, "slurm_array_parallelism": 256}
LOCAL_PARALLELISM = 2  # --slurm-cluster local: jobs at once unless --slurm-array-parallelism says otherwise
MAX_REQUEUES_ON_TIMEOUT = 10  # each requeue resumes at the last finished epoch, so they make progress
CARD_KEYS = {"gpus": "gpus_per_node", "time_min": "timeout_min", "mem_gb": "mem_gb", "cpus": "cpus_per_task",
             "partition": "slurm_partition"}  # fmt: skip
GENERIC = {"name", "timeout_min", "mem_gb", "nodes", "cpus_per_task", "gpus_per_node", "tasks_per_node"}
IN_FLIGHT_STATES = {"PENDING", "REQUEUED", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING", "PREEMPTED"}
OPTIONS = ("slurm_cluster", "slurm_partition", "slurm_time", "slurm_gpus", "slurm_array_parallelism", "slurm_set")


def _submitit():
    try:
        import submitit  # an optional dependency: checked when the launcher is used
    except ImportError:
        raise UserError("--launcher slurm needs submitit: pip install submitit") from None
    return submitit


def parse_time(text: str) -> int:
    """Minutes from a SLURM time: `90` (minutes), `mm:ss`, `h:mm:ss`, `d-h`, `d-h:mm` or `d-h:mm:ss`."""
    try:
        days, dash, clock = text.strip().partition("-") if "-" in text else ("0", "", text.strip())
        parts = [int(p) for p in clock.split(":")]
        if len(parts) > 3:
            raise ValueError
        if dash:
            hours, mins, secs = (parts + [0, 0])[:3]
        else:
            hours, mins, secs = parts if len(parts) == 3 else (0, *(parts + [0])[:2])
        minutes = int(days) * 1440 + hours * 60 + mins + math.ceil(secs / 60)
    except ValueError:
        raise UserError(
            f"--slurm-time expects minutes or a SLURM time like 4:00:00 or 1-12:00:00, got {text!r}"
        ) from None
    if minutes < 1:
        raise UserError(f"--slurm-time must be at least a minute, got {text!r}")
    return minutes


def job_parameters(method: str, options: dict) -> dict:
    """submitit parameters for one run of `method`: defaults < the card's hints < the user's flags."""
    params = dict(DEFAULTS, name=f"lksbench-{method}")
    for key, value in card_of(method).resources.items():
        if key not in CARD_KEYS:
            raise UserError(f"method {method!r}: unknown resource hint {key!r}; known: {', '.join(CARD_KEYS)}")
        params[CARD_KEYS[key]] = value
    given = {"slurm_partition": options.get("slurm_partition"), "gpus_per_node": options.get("slurm_gpus"),
             "slurm_array_parallelism": options.get("slurm_array_parallelism")}  # fmt: skip
    if options.get("slurm_time"):
        given["timeout_min"] = parse_time(options["slurm_time"])
    params.update({k: v for k, v in given.items() if v is not None})
    for item in options.get("slurm_set") or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--slurm-set expects key=value (e.g. account=myproject), got {item!r}")
        key = key.strip()
        params[key if key in GENERIC else f"slurm_{key.removeprefix('slurm_')}"] = parse_value(raw.strip())
    return params


class RunJob:
    """What an array task runs: one run, written to its file. Requeued on preemption and timeout."""

    def __init__(self, threads: int | None = None, since: float = 0.0):
        self.threads = threads  # None: the CPUs SLURM gave the job
        self.since = since  # when the driver started (a run file written later was written elsewhere)

    def __call__(self, cfg: dict, ctx: LaunchContext) -> tuple[str, str]:
        import submitit  # an optional dependency: imported where it is used (the driver checks it first)

        # torch would otherwise start a thread per core of the node, not per CPU of the job
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(self.threads or cpus or 1)
        prepare_worker(ctx)
        device = resolve_device(ctx.device)
        where = {"name": "slurm", "job_id": submitit.JobEnvironment().job_id, "host": platform.node()}
        # a run another process has claimed is waited for, then counted as done there
        status, record = run_one(RunConfig.from_dict(cfg), ctx.out, device, DataCache(ctx.data_root), since=self.since,
                                 wait=True, force=ctx.force, progress=False, where=where)  # fmt: skip
        return (status, "") if record is None else (status, summary_line(record))

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on the job's timeout/preemption signal: requeue the same call."""
        from submitit.helpers import DelayedSubmission  # the optional dependency, as above

        return DelayedSubmission(self, *args, **kwargs)


def _absolute(ctx: LaunchContext) -> LaunchContext:
    """Jobs may start in another directory: paths must not depend on where the driver ran."""
    plugins = tuple(str(Path(p).resolve()) if p.endswith(".py") or os.sep in p else p for p in ctx.plugins)
    root = str(Path(ctx.data_root).resolve()) if ctx.data_root else None
    return dataclasses.replace(ctx, out=str(Path(ctx.out).resolve()), data_root=root, plugins=plugins)


def _executor(submitit, cluster: str, folder: Path, params: dict):
    params = dict(params)
    max_timeouts = params.pop("slurm_max_num_timeout", MAX_REQUEUES_ON_TIMEOUT)
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster, slurm_max_num_timeout=max_timeouts,
                                     local_max_num_timeout=max_timeouts)  # fmt: skip
    try:
        executor.update_parameters(**params)
    except (NameError, ValueError, AssertionError) as exc:
        raise UserError(f"--launcher slurm: bad job parameter: {str(exc).splitlines()[0]}") from None
    return executor


def in_flight(submitit, folder: Path, runs: list) -> dict:
    """Jobs an earlier driver submitted that SLURM still holds: waited for again, never submitted twice."""
    marks = {cfg.run_id: folder / "in-flight" / cfg.run_id for cfg in runs}
    # every job is registered before the first state query, so one sacct call answers for all of them
    jobs = {
        run_id: submitit.SlurmJob(folder, mark.read_text().strip()) for run_id, mark in marks.items() if mark.exists()
    }
    for run_id, job in list(jobs.items()):
        if job.state not in IN_FLIGHT_STATES:  # over, or unknown to SLURM's accounting: submit it again
            marks[run_id].unlink(missing_ok=True)
            del jobs[run_id]
    return jobs


@register_launcher("slurm", "SLURM job arrays via submitit (--slurm-cluster local: local processes)", OPTIONS)
def slurm(runs: list, ctx: LaunchContext):
    submitit = _submitit()
    cluster = ctx.options.get("slurm_cluster") or "slurm"
    if cluster not in ("slurm", "local"):
        raise UserError(f"--slurm-cluster must be slurm or local, got {cluster!r}")
    if not (ctx.device in ("auto", "cpu") or ctx.device.startswith("cuda")):
        raise UserError(f"unknown device {ctx.device!r}; use auto, cpu, cuda or cuda:N")
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError("sbatch not found: run this on a SLURM login node, or try --slurm-cluster local")
    params = {cfg.run_id: job_parameters(cfg.method, ctx.options) for cfg in runs}  # validates before submitting
    if not runs:
        return Summary()
    ctx, since = _absolute(ctx), time.time()
    folder = Path(ctx.out) / "slurm"
    attached = in_flight(submitit, folder, runs) if cluster == "slurm" else {}
    groups: dict[str, list] = {}
    for cfg in runs:
        if cfg.run_id not in attached:
            groups.setdefault(repr(sorted(params[cfg.run_id].items())), []).append(cfg)
    # one executor per set of resources; a bad setting fails here, before any job is submitted
    executors = {key: _executor(submitit, cluster, folder, params[cfgs[0].run_id]) for key, cfgs in groups.items()}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    parallel = int(ctx.options.get("slurm_array_parallelism") or LOCAL_PARALLELISM)
    threads = None if cluster == "slurm" else max(1, (os.cpu_count() or 1) // parallel)  # local jobs share this machine

    def submit(key: str, cfgs: list) -> list:
        executor = executors[key]
        with executor.batch():
            jobs = [executor.submit(RunJob(threads, since), cfg.to_dict(), ctx) for cfg in cfgs]
        if cluster == "slurm":  # job ids are known once the batch is submitted
            (folder / "in-flight").mkdir(parents=True, exist_ok=True)
            for job, cfg in zip(jobs, cfgs):
                (folder / "in-flight" / cfg.run_id).write_text(job.job_id)
        return list(zip(jobs, cfgs))

    waiting = [(attached[cfg.run_id], cfg) for cfg in runs if cfg.run_id in attached]
    pending = [(key, cfgs) for key, cfgs in groups.items()]
    if cluster == "slurm":
        for key, cfgs in pending:
            waiting += submit(key, cfgs)
        pending, parallel, poll = [], len(runs), 30.0
        ids = sorted({job.job_id.split("_")[0] for job, _ in waiting})
        earlier = f" ({len(attached)} of them submitted earlier, still queued or running)" if attached else ""
        print(f"{len(runs)} runs in job array(s) {', '.join(ids)}{earlier}; logs in {folder}/")
    else:
        pending, poll = [(key, [cfg]) for key, cfgs in pending for cfg in cfgs], 0.2
        print(f"{len(runs)} runs as local jobs, {parallel} at a time; logs in {folder}/")
    summary = Summary()
    try:
        while waiting or pending:
            while pending and len(waiting) < parallel:
                waiting += submit(*pending.pop(0))
            finished = [(job, cfg) for job, cfg in waiting if job.done()]
            if not finished:
                time.sleep(poll)
            for job, cfg in finished:
                waiting.remove((job, cfg))
                (folder / "in-flight" / cfg.run_id).unlink(missing_ok=True)
                status, line = _outcome(job, cfg)
                summary.counts[status] += 1
                if line:
                    print(line, flush=True)
    except KeyboardInterrupt:
        summary.interrupted = True
        if cluster == "slurm":
            print(f"stopped waiting: {len(waiting)} jobs go on and write their run files; rerun to wait for them")
    return summary


def _outcome(job, cfg) -> tuple[str, str]:
    try:
        return job.result()
    except Exception as exc:  # the job itself failed (node failure, bad input): say where to look
        full = [line.split("DiskFull: ", 1)[1] for line in str(exc).splitlines() if "DiskFull: " in line]
        if full:  # no run file was written: not a failure of the run, the next command redoes it
            return "no space", f"no space  {cfg.label}: job {job.job_id}: {full[-1]}"
        last = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
        return "failed", f"  failed  {cfg.label}: job {job.job_id}: {last} (log: {job.paths.stderr})"
