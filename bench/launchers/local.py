"""The `local` launcher: this machine, one run after the other in this process, or a pool of worker processes
(one per CPU core by default; on a GPU, --runs-per-gpu runs share it)."""

from __future__ import annotations

from bench.base import UserError
from bench.launchers import LaunchContext, cpu_cores, gpu_slots, parse_workers, register_launcher
from bench.launchers.pool import run_pool
from bench.run.env import resolve_device
from bench.run.runner import run_grid


@register_launcher("local", "this machine: --workers processes (default: one per CPU core; on a GPU --runs-per-gpu)",
                   ("workers", "runs_per_gpu"))  # fmt: skip
def local(runs: list, ctx: LaunchContext):
    device = resolve_device(ctx.device)
    if device == "cpu":
        if ctx.options.get("runs_per_gpu") is not None:
            raise UserError("--runs-per-gpu shares a GPU between runs, and this runs on the CPU: use --workers")
        workers = parse_workers(ctx.options.get("workers"), device, len(runs))
        if workers > 1:
            return run_pool(runs, ctx, ["cpu"] * workers, threads=max(1, cpu_cores() // workers), name="local")
    else:
        slots = gpu_slots(device, ctx.options)
        if len(slots) > 1:  # several runs on the one GPU, each in its own process (pool.py)
            return run_pool(runs, ctx, slots, threads=max(1, cpu_cores() // len(slots)), name="local")
    print(f"{len(runs)} runs to do on {device}, results in {ctx.out}/runs/")
    return run_grid(runs, ctx.out, device, data_root=ctx.data_root, force=ctx.force, progress=ctx.progress)
