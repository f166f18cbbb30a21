"""`python run_all.py --suite gpu-check`: every method at real sizes on one GPU, in a few minutes.

Each method trains for up to STEPS steps (after WARMUP untimed ones, and at most CAP_S seconds
of timed steps) on generated inputs, so nothing is downloaded: sCIFAR10-shaped sequences
(3 x 1024, causal), 32 x 32 and 96 x 96 RGB images, 10 classes. The step is the protocol's:
AdamW over the modules' parameter groups, bf16 autocast, regularisation terms, post-step hooks,
and the fast path (bench/run/fastpath.py), with the step eager unless `--compile graph` (or model, auto)
asks for the compiled one (column `compile`). Throughput, step time, peak memory and FLOPs go to
<out>/perf/gpu-check-<GPU model>.csv, one row per method and input; failures and OOMs are rows.

Without a GPU it runs scaled down (tiny inputs and models, a few steps): a check that the
path works, whose numbers say nothing about GPU speed (the file is named gpu-check-cpu.csv).
"""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import torch

import methods
from bench.base import UserError
from bench.run import fastpath, measure
from bench.run.config import RunConfig, TrainConfig, parse_overrides
from bench.run.env import resolve_device
from bench.run.protocol import TrainStep, make_optimizer
from methods.task import TaskSpec

DESCRIPTION = "every method at real sizes on generated inputs, a few hundred steps each (< 5 min on one GPU)"
INPUTS = {"seq1024": (1, 1024, 64), "img32": (2, 32, 64), "img96": (2, 96, 32)}  # dim, size, batch size
MODELS = {1: dict(arch="flextcn6"), 2: dict(arch="flexnet7")}  # the papers' largest FlexTCN / FlexNet
STEPS, WARMUP, CAP_S = 300, 10, 3.0  # CAP_S: seconds of timed steps per check (run_check's cap_s)
# without a GPU: inputs and models small enough for a test
CPU_INPUTS = {"seq1024": (1, 32, 4), "img32": (2, 8, 4), "img96": (2, 12, 4)}
CPU_MODELS = {1: dict(arch="flextcn2", width=4), 2: dict(arch="flexnet3", width=4)}
CPU_STEPS, CPU_WARMUP = 2, 1
COLUMNS = ["method", "input", "shape", "batch_size", "status", "error", "params", "flops_fwd", "steps", "ms_per_step",
           "train_samples_s", "peak_mem_mb", "fastpath", "device", "torch", "compile"]  # fmt: skip


def tasks(cuda: bool) -> dict[str, tuple[TaskSpec, int]]:
    out = {}
    for name, (dim, size, batch) in (INPUTS if cuda else CPU_INPUTS).items():
        out[name] = (TaskSpec(dim, 3, 10, size if dim == 1 else (size, size), causal=dim == 1), batch)
    return out


def _hparams(method: str, dim: int, cuda: bool) -> dict:
    accepted = methods.accepted_hparams(method)
    chosen = (MODELS if cuda else CPU_MODELS)[dim]
    return {k: v for k, v in chosen.items() if accepted is None or k in accepted}


def check_one(
    method: str, input_name: str, task: TaskSpec, batch: int, device: str, cap_s: float = CAP_S, compile: str = "off"
) -> dict:
    """Train `method` on generated batches of `task` and time it; returns one CSV row."""
    cuda = torch.device(device).type == "cuda"
    row = {"method": method, "input": input_name, "shape": "x".join(map(str, task.input_shape)), "batch_size": batch}
    reason = methods.skip_reason(method, task)
    if reason:
        return {**row, "status": "unsupported", "error": reason}
    steps, warmup = (STEPS, WARMUP) if cuda else (CPU_STEPS, CPU_WARMUP)
    torch.manual_seed(0)
    try:
        hp = _hparams(method, task.dim, cuda)
        model = methods.build_model(method, task, **hp).to(device)
        tc = TrainConfig(lr=1e-3, compile=compile)
        model, _, fast = fastpath.prepare(RunConfig(method, input_name, model=hp, train=tc), model, None, device)
        mode = fastpath.compile_mode(compile, device, model)
        forward = fastpath.train_forward(model, mode)
        step = TrainStep(model, make_optimizer(model, tc), tc, device, task.metric, forward)
        x = torch.randn(batch, *task.input_shape, device=device)
        y = torch.randint(0, task.num_classes, (batch,), device=device)
        for _ in range(warmup):
            step(x, y)
        if cuda:
            torch.cuda.synchronize()
        measure.reset_peak_memory(device)
        done, start = 0, time.perf_counter()
        while done < steps and (done == 0 or time.perf_counter() - start < cap_s):
            for _ in range(10 if cuda else 1):
                step(x, y)
            done += 10 if cuda else 1
            if cuda:
                torch.cuda.synchronize()  # keeps the time cap honest with asynchronous launches
        elapsed = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else measure.peak_cpu_memory()[0]
        flops, _ = measure.count_flops(model, x[:1])
        return {**row, "status": "ok", "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "flops_fwd": flops, "steps": done, "ms_per_step": 1000 * elapsed / done,
                "train_samples_s": batch * done / elapsed, "peak_mem_mb": round(peak, 1),
                "fastpath": ",".join(k for k, v in fast.items() if v and k != "compile"), "compile": mode}  # fmt: skip
    except Exception as exc:  # a row per failure: the check goes on with the next method
        oom = isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()
        return {**row, "status": "oom" if oom else "failed", "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    finally:
        if cuda:
            torch.cuda.empty_cache()  # the model and optimizer are gone with this frame


def output_path(out: str | Path, device: str) -> Path:
    if torch.device(device).type != "cuda":
        name = "cpu"
    else:
        name = re.sub(r"[^A-Za-z0-9.]+", "-", torch.cuda.get_device_name(torch.device(device))).strip("-")
    return Path(out) / "perf" / f"gpu-check-{name}.csv"


def run_check(
    method_names: list[str],
    device: str,
    out: str | Path,
    dry_run: bool = False,
    cap_s: float = CAP_S,
    compile: str = "off",
    inputs: list[str] | None = None,
    path: Path | None = None,
) -> int:
    """`compile`: train.compile for every check; `inputs`: some of INPUTS only; `path`: the CSV (default
    output_path(out, device))."""
    cuda = torch.device(device).type == "cuda"
    grid = [(m, name, task, batch) for name, (task, batch) in tasks(cuda).items() for m in method_names
            if inputs is None or name in inputs]  # fmt: skip
    if dry_run:
        for m, name, task, batch in grid:
            print(f"{m:<18} {name:<8} {'x'.join(map(str, task.input_shape)):<10} batch {batch}")
        print(f"{len(grid)} checks")
        return 0
    if not cuda:
        print("gpu-check: no GPU in use, so a scaled-down check (tiny inputs, a few steps) that only shows the "
              "path works; run it on a GPU for the numbers")  # fmt: skip
    path = path or output_path(out, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, start = [], time.perf_counter()
    try:
        for m, name, task, batch in grid:
            rows.append(
                {
                    **check_one(m, name, task, batch, device, cap_s, compile),
                    "device": device,
                    "torch": torch.__version__,
                }
            )
            r = rows[-1]
            speed = f"{r['train_samples_s']:.0f} samples/s, {r['peak_mem_mb']:.0f} MiB" if r["status"] == "ok" else ""
            print(f"  {r['status']:>11}  {m:<18} {name:<8} {speed or r['error']}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: writing the rows done so far")
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    bad = sum(r["status"] in ("failed", "oom") for r in rows)
    print(f"gpu-check: {len(rows)} checks in {time.perf_counter() - start:.0f}s, {bad} failed -> {path}")
    return 0


def main(args) -> int:
    """The command line's entry (`--suite gpu-check`): methods from --methods, one device."""
    if args.launcher != "local":
        raise UserError("--suite gpu-check runs on one device in this process: use the default --launcher local")
    names = methods.METHODS.select(args.methods.split(",") if args.methods else ["*"])
    # the eager step unless --compile (or --set train.compile=) asks: compiling 90 models takes longer than the check
    compile = parse_overrides(args.overrides)["train"].get("compile", "off")
    return run_check(names, resolve_device(args.device), args.out, args.dry_run, compile=compile)
