"""Launchers: who trains the runs of a grid, and where.

A launcher is a function `(runs, ctx) -> Summary` registered under a name:

- `local` (default): this machine; one run after the other in this process (runner.run_grid),
  or --workers processes (pool.py; by default one per core on the CPU); on a GPU, --workers N
  (or --runs-per-gpu N) runs N runs on that GPU at once, each in its own process;
- `local-gpus`: one worker process per GPU slot, each run pinned to one GPU (local_gpus.py),
  --runs-per-gpu workers on each listed GPU;
- `slurm`: SLURM job arrays through submitit, an optional dependency (slurm.py).

The driver (`launch`) drops the runs whose file already says ok and hands the rest over.
Wherever a run executes, it writes its own run file (atomically), so a driver that dies loses
nothing: rerunning the same command resumes. Third-party launchers register a function with
`register_launcher` in a module named by the entry-point group `lksbench.launchers`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.base import Registry, UserError
from bench.run import store
from bench.run.plugins import load_plugin

LAUNCHERS = Registry(
    "launcher",
    "lksbench.launchers",
    {"local": "bench.launchers.local", "local-gpus": "bench.launchers.local_gpus", "slurm": "bench.launchers.slurm"},
)


@dataclass(frozen=True)
class LauncherCard:
    description: str = ""
    options: tuple[str, ...] = ()  # the `options` keys (command-line flags) the launcher reads


@dataclass(frozen=True)
class LaunchContext:
    out: str
    device: str = "auto"  # the --device request, resolved where each run executes
    data_root: str | None = None
    force: bool = False
    progress: bool = True
    plugins: tuple[str, ...] = ()  # --plugin specs, loaded again in every worker process
    options: dict[str, Any] = field(default_factory=dict)  # launcher flags that were given, e.g. {"gpus": "0,1"}


def register_launcher(name: str, description: str = "", options: tuple[str, ...] = ()) -> Callable:
    return LAUNCHERS.register(name, card=LauncherCard(description, tuple(options)))


def flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def launch(name: str, runs: list, ctx: LaunchContext):
    """Run what is not done yet with launcher `name`; returns the runner's Summary."""
    entry = LAUNCHERS.get(name)
    foreign = sorted(set(ctx.options) - set(entry.card.options))
    if foreign:
        raise UserError(f"{', '.join(flag(o) for o in foreign)} is not an option of --launcher {name}")
    todo = runs if ctx.force else [cfg for cfg in runs if store.status_of(ctx.out, cfg.run_id) != "ok"]
    summary = entry.obj(todo, ctx)
    if len(runs) > len(todo):
        summary.counts["cached"] += len(runs) - len(todo)
    return summary


def prepare_worker(ctx: LaunchContext) -> None:
    """What a fresh process (worker, cluster job) needs before it can build the runs: the plugins."""
    for spec in ctx.plugins:
        load_plugin(spec)


def cpu_cores() -> int:
    """The cores this process may use (a cluster job or taskset may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# runs a GPU trains at once by default; bench/cost/gpu_session.py measures 1, 2, 4 and 8 (not yet on a GPU)
RUNS_PER_GPU = 1


def _count(text, flag: str) -> int:
    try:
        n = int(text)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise UserError(f"{flag} expects a positive integer{' or auto' if flag == '--workers' else ''}, got {text!r}")
    return n


def parse_workers(text, device: str, runs: int) -> int:
    """--workers: a count, or auto: one per CPU core on the CPU (single-threaded small models scale
    better as processes than as threads: bench/cost/perf_suite.py), RUNS_PER_GPU on a GPU."""
    if text in (None, "auto"):
        return RUNS_PER_GPU if device.startswith("cuda") else max(1, min(cpu_cores(), runs))
    return _count(text, "--workers")


def runs_per_gpu(options: dict) -> int:
    """--runs-per-gpu: worker processes that share one GPU (default RUNS_PER_GPU)."""
    text = options.get("runs_per_gpu")
    return RUNS_PER_GPU if text in (None, "auto") else _count(text, "--runs-per-gpu")


def gpu_slots(device: str, options: dict) -> list[str]:
    """`local` on a GPU: the pool's slots, one per run at once on it (--workers or --runs-per-gpu, not both)."""
    if options.get("workers") is not None and options.get("runs_per_gpu") is not None:
        raise UserError("--workers and --runs-per-gpu both say how many runs share the GPU: give one")
    n = parse_workers(options["workers"], device, 0) if options.get("workers") is not None else runs_per_gpu(options)
    if not device.startswith("cuda"):
        if n > 1:
            raise UserError(f"--workers > 1 runs on CPU cores or CUDA GPUs, not on {device}")
        return ["cpu"]
    index = torch.device(device).index
    return [str(torch.cuda.current_device() if index is None else index)] * n
