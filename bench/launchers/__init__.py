"""Launchers: who trains the runs of a grid, and where.

A launcher is a function `(runs, ctx) -> Summary` registered under a name:

- `local` (default): one after the other, in this process (runner.run_grid);
- `local-gpus`: one worker process per GPU slot, each run pinned to one GPU (local_gpus.py);
- `slurm`: SLURM job arrays through submitit, an optional dependency (slurm.py).

The driver (`launch`) drops the runs whose file already says ok and hands the rest over.
Wherever a run executes, it writes its own run file (atomically), so a driver that dies loses
nothing: rerunning the same command resumes. Third-party launchers register a function with
`register_launcher` in a module named by the entry-point group `lksbench.launchers`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import store
from bench.errors import UserError
from bench.registry import Registry

LAUNCHERS = Registry(
    "launcher",
    "lksbench.launchers",
    {"local": "bench.launchers", "local-gpus": "bench.launchers.local_gpus", "slurm": "bench.launchers.slurm"},
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
    from bench.plugins import load_plugin

    for spec in ctx.plugins:
        load_plugin(spec)


@contextmanager
def one_at_a_time(lock: Path):
    """An exclusive lock across processes: workers must not download the same dataset at once."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX)
        except (ImportError, OSError):  # no fcntl (Windows) or a filesystem without locks: go on unlocked
            pass
        yield  # closing the file releases the lock


def run_and_store(cfg, ctx: LaunchContext, device: str, cache, where: dict[str, Any]) -> dict | None:
    """Train one run where it executes and write its file; None when an earlier attempt finished it."""
    from bench.runner import execute

    if not ctx.force and store.status_of(ctx.out, cfg.run_id) == "ok":
        return None
    with one_at_a_time(Path(ctx.out) / ".data.lock"):
        cache.get(cfg)  # load (or download) the data now, alone; execute() then finds it in the cache
    record = execute(cfg, device, cache, progress=False, out=ctx.out)
    record["launcher"] = where
    store.write_run(ctx.out, record)
    return record


@register_launcher("local", "one run after the other in this process (default)")
def local(runs: list, ctx: LaunchContext):
    from bench.env import resolve_device
    from bench.runner import run_grid

    device = resolve_device(ctx.device)
    print(f"{len(runs)} runs to do on {device}, results in {ctx.out}/runs/")
    return run_grid(runs, ctx.out, device, data_root=ctx.data_root, force=True, progress=ctx.progress)
