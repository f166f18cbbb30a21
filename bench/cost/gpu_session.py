"""`python -m bench.cost.gpu_session --out DIR`: issue 23's GPU figures in one command, inside 8 minutes of a GPU.

Four steps, each writing as it goes (a kill leaves what was measured), one summary line each:

1. the GPU-marked tests (`pytest -m gpu`: the compiled step against eager, gpu-check, runs on CUDA);
2. gpu-check rows with the training step eager (`train.compile=off`) for FlexNet-7 on 32 px images at batch
   64 with every learned-size method and for CIFAR ResNet-44 -> DIR/gpu-compile-<GPU>.csv;
3. `--runs-per-gpu` 1, 2, 4, 8: N processes train FlexNet-7 with FlexConv (32 px, batch 64, eager) on the
   GPU at once for RPG_S seconds after a common start; the aggregate samples/s of all N and per run
   -> DIR/gpu-runs-per-gpu-<GPU>.csv (the launcher's default, RUNS_PER_GPU, is 1 until this says otherwise);
4. the same gpu-check rows with the compiled step (`train.compile=graph`: inductor + CUDA graphs), in the
   order of COMPILED (FlexConv and ResNet-44 first), while the deadline allows (compiling takes tens of
   seconds a model), appended to the CSV of step 2 with the speed-up over the eager row.

The last lines say the speed-ups and the best runs-per-GPU aggregate; DIR/summary.txt holds them. Start on a GPU
machine (the device tool: a run with timeout_s 540, `python3 -m bench.cost.gpu_session --out $OUT`, after the
install lines of bench/cost/gpu_validate.py's docstring when mnist1d and submitit are missing). Without a GPU,
`--rehearse` runs every step scaled down on the CPU (tiny inputs, the compile step traced without code
generation, N = 1, 2) to check the plumbing before device time is spent on it.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch._dynamo

import methods
from bench.cost import gpu_check
from bench.run.config import TrainConfig
from bench.run.protocol import TrainStep, make_optimizer
from methods import build_model

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 420  # the session's own budget: steps stop starting work after it
RPG = (1, 2, 4, 8)
RPG_S = 6.0  # timed seconds per runs-per-GPU measurement
# compiled rows in this order, while time allows: the headline rows first, then every learned-size method
COMPILED = ("flexconv", "resnet44", "ccnn", "dcn_sigma", "s4d", "njet", "dcls", "deformable", "smpconv", "srf_gauss",
            "flexconv_sep", "flexconv_gabor", "flexconv_fourier", "flexconv_siren")  # fmt: skip
COLUMNS = ["method", "input", "compile", "status", "error", "train_samples_s", "ms_per_step", "steps", "peak_mem_mb",
           "speedup_vs_off", "wall_s", "gpu", "torch"]  # fmt: skip


def methods_measured() -> list[str]:
    learned = [m for m in methods.list_methods() if methods.card_of(m).learned_size]
    return [m for m in COMPILED if m in learned or m == "resnet44"] + sorted(set(learned) - set(COMPILED))


def gpu_name(device: str) -> str:
    if device == "cpu":
        return "cpu"
    return re.sub(r"[^A-Za-z0-9.]+", "-", torch.cuda.get_device_name(0)).strip("-")


class Session:
    def __init__(self, out: Path, device: str, deadline_s: float):
        self.out, self.device, self.start, self.deadline_s, self.lines = (
            out,
            device,
            time.perf_counter(),
            deadline_s,
            [],
        )

    def left(self) -> float:
        return self.deadline_s - (time.perf_counter() - self.start)

    def line(self, step: str, ok: bool, text: str, since: float) -> None:
        out = f"gpu_session {step}: {'ok' if ok else 'FAILED'}: {text} ({time.perf_counter() - since:.0f} s)"
        print(out, flush=True)
        self.lines.append(out)
        (self.out / "summary.txt").write_text("\n".join(self.lines) + "\n")


def step_tests(s: Session) -> None:
    since = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=min(200, s.left()))
        tail, ok = (proc.stdout.strip().splitlines() or [proc.stderr.strip()])[-1], proc.returncode == 0
        if not ok:
            print(proc.stdout[-4000:], proc.stderr[-2000:], flush=True)
    except subprocess.TimeoutExpired:
        tail, ok = "timed out", False
    s.line("1 GPU tests", ok, tail, since)


def _row(method: str, compile: str, device: str) -> dict:
    task, batch = gpu_check.tasks(device == "cuda")["img32"]
    since = time.perf_counter()
    r = gpu_check.check_one(method, "img32", task, batch, device, cap_s=1.5 if device == "cuda" else 0.1,
                            compile=compile)  # fmt: skip
    return {**{k: r.get(k) for k in COLUMNS}, "compile": r.get("compile", compile), "wall_s": time.perf_counter() - since,
            "gpu": gpu_name(device), "torch": torch.__version__}  # fmt: skip


def _append(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def step_eager(s: Session, path: Path) -> dict[str, float]:
    since, speeds = time.perf_counter(), {}
    for method in methods_measured():
        if s.left() < 200:  # keep time for the runs-per-GPU and compiled steps
            break
        row = _row(method, "off", s.device)
        _append(path, row)
        speeds[method] = row["train_samples_s"] if row["status"] == "ok" else None
        print(f"  off    {method:<18} {row['status']:>6} {row['train_samples_s'] or 0:>10,.0f} samples/s", flush=True)
    shown = ", ".join(f"{m} {v:,.0f}" for m, v in speeds.items() if v and m in ("flexconv", "resnet44"))
    ok = bool(speeds) and all(speeds.values())
    s.line("2 eager gpu-check", ok, f"{len(speeds)} methods, img32 batch 64: {shown} samples/s -> {path}", since)
    return speeds


def _rpg_worker(device: str, barrier, seconds: float, results, rehearse: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    task, batch = gpu_check.tasks(device == "cuda")["img32"]
    model = build_model("flexconv", task, **gpu_check._hparams("flexconv", 2, device == "cuda")).to(device)
    tc = TrainConfig(lr=1e-3)
    step = TrainStep(model, make_optimizer(model, tc), tc, device, "accuracy")
    x = torch.randn(batch, *task.input_shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    cuda = device == "cuda"
    for _ in range(3):
        step(x, y)
    if cuda:
        torch.cuda.synchronize()
    barrier.wait()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(1 if rehearse else 5):
            step(x, y)
        done += 1 if rehearse else 5
    if cuda:
        torch.cuda.synchronize()
    results.put(done * batch / (time.perf_counter() - start))


def step_runs_per_gpu(s: Session, path: Path, counts: tuple[int, ...], seconds: float, rehearse: bool) -> None:
    since, ctx, rows = time.perf_counter(), mp.get_context("spawn"), []
    for n in counts:
        if s.left() < seconds + 60:
            break
        barrier, results = ctx.Barrier(n), ctx.Queue()
        procs = [
            ctx.Process(target=_rpg_worker, args=(s.device, barrier, seconds, results, rehearse)) for _ in range(n)
        ]
        for p in procs:
            p.start()
        speeds = []
        for _ in procs:
            try:
                speeds.append(results.get(timeout=seconds + 120))
            except Exception:
                break
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
        ok = len(speeds) == n
        row = {"runs_per_gpu": n, "status": "ok" if ok else "failed", "aggregate_samples_s": sum(speeds) if ok else None,
               "per_run_samples_s": sum(speeds) / n if ok else None, "method": "flexconv", "input": "img32",
               "compile": "off", "gpu": gpu_name(s.device)}  # fmt: skip
        rows.append(row)
        new = not path.exists()
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        print(f"  runs-per-gpu {n}: {row['aggregate_samples_s'] or 0:,.0f} samples/s in all", flush=True)
    good = [r for r in rows if r["status"] == "ok"]
    base = good[0]["aggregate_samples_s"] if good and good[0]["runs_per_gpu"] == 1 else None
    parts = [f"{r['runs_per_gpu']}: {r['aggregate_samples_s']:,.0f}" + (f" ({r['aggregate_samples_s'] / base:.2f}x)"
             if base else "") for r in good]  # fmt: skip
    best = max(good, key=lambda r: r["aggregate_samples_s"])["runs_per_gpu"] if good else None
    ok = bool(rows) and len(good) == len(rows)
    s.line("3 runs-per-gpu", ok, f"aggregate samples/s, FlexNet-7 FlexConv 32 px: {'; '.join(parts)}; best {best} -> {path}",
           since)  # fmt: skip


def step_compiled(s: Session, path: Path, eager: dict[str, float]) -> None:
    since, done = time.perf_counter(), []
    for method in [m for m in methods_measured() if m in eager]:
        if s.left() < 90:  # a model's compile can take a minute or two
            break
        torch._dynamo.reset()  # the previous model's graphs (and their CUDA graph memory) are not needed again
        row = _row(method, "graph", s.device)
        base = eager.get(method)
        speedup = row["train_samples_s"] / base if row["status"] == "ok" and base else None
        _append(path, {**row, "speedup_vs_off": speedup})
        done.append(f"{method} {row['train_samples_s'] or 0:,.0f} ({speedup or 0:.1f}x)" if row["status"] == "ok"
                    else f"{method} {row['status']}")  # fmt: skip
        print(f"  graph  {method:<18} {row['status']:>6} {row['train_samples_s'] or 0:>10,.0f} samples/s "
              f"{speedup or 0:.2f}x, {row['wall_s']:.0f} s with compiling", flush=True)  # fmt: skip
    ok = bool(done) and not any(d.endswith(("failed", "oom")) for d in done)
    s.line("4 compiled gpu-check", ok, f"{len(done)} methods, samples/s (x eager): {'; '.join(done)} -> {path}", since)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "perf")
    parser.add_argument("--deadline", type=float, default=DEADLINE_S, help="seconds before steps stop starting work")
    parser.add_argument("--rehearse", action="store_true", help="without a GPU: every step scaled down on the CPU")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.rehearse:
        print(f"gpu_session: no CUDA GPU here (torch {torch.__version__}); run it on a GPU machine, or add --rehearse",
              flush=True)  # fmt: skip
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    device = "cuda" if cuda else "cpu"
    s = Session(args.out, device, args.deadline)
    name = gpu_name(device)
    compile_csv, rpg_csv = args.out / f"gpu-compile-{name}.csv", args.out / f"gpu-runs-per-gpu-{name}.csv"
    for path in (compile_csv, rpg_csv):
        path.unlink(missing_ok=True)
    if cuda:
        step_tests(s)
    else:
        s.line("1 GPU tests", True, "skipped: no GPU (rehearsal)", s.start)
        real = torch.compile
        torch.compile = lambda model, **options: real(model, backend="eager")  # traced, no code generation
    eager = step_eager(s, compile_csv)
    step_runs_per_gpu(s, rpg_csv, RPG if cuda else (1, 2), RPG_S if cuda else 1.0, not cuda)
    step_compiled(s, compile_csv, eager)
    failed = [x for x in s.lines if ": FAILED:" in x]
    s.line("done", not failed, f"{len(s.lines) - len(failed)}/{len(s.lines)} steps ok on {name}", s.start)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
