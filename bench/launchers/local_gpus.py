"""`--launcher local-gpus --gpus 0,1,2,3`: one worker process per slot, each run pinned to one GPU.

A slot is a GPU id (as numbered by torch in the driver, i.e. within CUDA_VISIBLE_DEVICES) or
`cpu`; a repeated id gives that GPU several workers (small models leave a GPU mostly idle), and
`--runs-per-gpu N` repeats every listed id N times.
The workers and what happens when one of them, or the driver, stops: bench/launchers/pool.py.
CPU slots (`--gpus cpu,cpu`) exercise the same path without a GPU.
"""

from __future__ import annotations

import os

import torch

from bench.base import UserError
from bench.launchers import LaunchContext, register_launcher, runs_per_gpu
from bench.launchers.pool import run_pool


def parse_gpus(text: str | None) -> list[str]:
    """`0,1,2,3` / `0,0,1,1` / `cpu,cpu` / `all` (default: every visible GPU) -> one slot per entry."""
    entries = [e.strip() for e in (text or "all").split(",") if e.strip()]
    count = torch.cuda.device_count()
    if entries == ["all"]:
        if count == 0:
            raise UserError("--launcher local-gpus: no CUDA GPU here; use --gpus cpu,cpu to try it on CPU workers")
        return [str(i) for i in range(count)]
    for e in entries:
        if e != "cpu" and not e.isdigit():
            raise UserError(f"--gpus expects GPU ids or 'cpu' separated by commas (e.g. 0,1,2,3), got {text!r}")
        if e.isdigit() and int(e) >= count:
            have = f"GPUs 0-{count - 1}" if count else "no CUDA GPU (use --gpus cpu,cpu)"
            raise UserError(f"--gpus {text}: there is no GPU {e}; this machine has {have}")
    if not entries:
        raise UserError("--gpus names no slot")
    return entries


@register_launcher("local-gpus", "one worker process per GPU (--gpus 0,1,2,3; cpu,cpu to try it), "
                   "--runs-per-gpu each", ("gpus", "runs_per_gpu"))  # fmt: skip
def local_gpus(runs: list, ctx: LaunchContext):
    if ctx.device != "auto":
        raise UserError("--launcher local-gpus places runs itself: choose devices with --gpus, not --device")
    slots = [slot for slot in parse_gpus(ctx.options.get("gpus")) for _ in range(runs_per_gpu(ctx.options))]
    return run_pool(runs, ctx, slots, threads=max(1, (os.cpu_count() or 1) // len(slots)), name="local-gpus")
