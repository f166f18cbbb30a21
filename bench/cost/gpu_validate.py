"""`python -m bench.cost.gpu_validate`: run the suite's CUDA path for real, once, inside 8 minutes of a GPU.

Four steps, one summary line each (and a last line with the total):

1. the test suite's GPU-marked tests (tests/test_gpu.py and the other `@pytest.mark.gpu` ones):
   bf16 autocast around the kernel nets, the FFT path against the CPU, torchvision's
   deform_conv2d against the CPU sampling path, deterministic CUDA runs, what a run records;
2. `gpu-check` on every registered method at real sizes -> results/perf/gpu-check-<GPU>.csv,
   with a shorter timing cap than the standalone `--suite gpu-check` (CAP_S below);
3. one epoch of the flexconv-cifar suite's FlexNet-7 with FlexConv, CKCNN and CIFAR ResNet-44 at
   the paper's batch size (64), on generated CIFAR-shaped images (the real files cannot be
   downloaded there): FAKE_TRAIN images, so the epoch is 1/4.5 of CIFAR-10's;
4. `--launcher local-gpus --gpus 0,0` on the smoke suite's digits runs: two workers on one GPU;
   every run file must say ok and name the GPU.

Steps 3 and 4 train with `--compile off`, as measured on 2026-12-04 (the compiled step's figures:
bench/cost/gpu_session.py). Without a CUDA device it says so in one line and exits with status 2; `--rehearse` then runs the same
steps on the CPU, scaled down, to check the plumbing before device time is spent on it (no GPU
test, a tiny gpu-check, 2 steps of the epoch, `--gpus cpu,cpu`). Files go under --out
(default results/gpu-validate/), the gpu-check CSV to results/perf/ so it can be committed.
On the machine of the tool library's `device` entry (python3 3.12, torch 2.11; no mnist1d or
submitit, which these steps do not import, but a full test run does), as its README says:

    here, once:  echo /.whl/ >> .git/info/exclude
                 python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
                     --implementation cp --platform manylinux2014_x86_64 -d .whl mnist1d==0.0.2.post1 submitit==1.5.4
    there (run, carry [".whl"], timeout_s 540):
                 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit;
                 PYTHONUNBUFFERED=1 python3 -m bench.cost.gpu_validate --out $OUT/gpu && cp results/perf/gpu-check-*.csv $OUT/
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

import methods
from bench.cost.gpu_check import output_path, run_check
from bench.run import store
from bench.run.env import environment

REPO = Path(__file__).resolve().parents[2]
CAP_S = 0.5  # seconds of timed steps per gpu-check row here (the standalone check uses 3)
FAKE_TRAIN, FAKE_TEST = 10_000, 2_000
PLUGIN = f"""
import torch
from datasets import register_dataset
from datasets.base import Loaded
from datasets.tensors import tensor_dataset


@register_dataset("cifar10_generated", description="random CIFAR-shaped images (gpu_validate)", shape=(3, 32, 32),
                  classes=10)
def cifar10_generated(*, seed, data_root, n_train: int = {FAKE_TRAIN}, n_test: int = {FAKE_TEST}):
    g = torch.Generator().manual_seed(seed)
    def split(n):
        return tensor_dataset(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g))
    return Loaded(split(n_train), split(n_test))
"""


def line(step: str, ok: bool, text: str, start: float) -> str:
    out = f"gpu_validate {step}: {'ok' if ok else 'FAILED'}: {text} ({time.perf_counter() - start:.0f} s)"
    print(out, flush=True)
    return out


def run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    try:
        return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(cmd, 124, exc.stdout or "", f"timed out after {timeout:.0f} s")


def step_tests() -> str:
    start = time.perf_counter()
    proc = run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"], timeout=150)
    tail = (proc.stdout.strip().splitlines() or [proc.stderr.strip()])[-1]
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-2000:], flush=True)
    return line("1 GPU tests", proc.returncode == 0, tail, start)


def step_gpu_check(device: str, out: Path) -> str:
    start = time.perf_counter()
    names = methods.list_methods()
    folder = REPO / "results" if device == "cuda" else out  # a rehearsal's CSV says nothing worth keeping
    run_check(names, device, folder, cap_s=CAP_S)
    path = output_path(folder, device)
    rows = path.read_text().splitlines()[1:]
    bad = [r.split(",")[0] + "/" + r.split(",")[1] for r in rows if ",failed," in r or ",oom," in r]
    gpu = environment(device)["gpu_name"] or "cpu"
    text = f"{len(rows)} rows ({len(names)} methods x 3 inputs) on {gpu} -> {path}"
    return line("2 gpu-check", not bad, text + (f"; failed: {', '.join(bad)}" if bad else ""), start)


def _records(out: Path) -> list[dict]:
    records, problems = store.load_runs(out)
    if problems:
        print("\n".join(problems))
    return records


def step_cifar(out: Path, plugin: Path, rehearse: bool) -> str:
    start = time.perf_counter()
    cmd = [sys.executable, "run_all.py", "--plugin", str(plugin), "--suite", "flexconv-cifar", "--datasets",
           "cifar10_generated", "--methods", "flexconv,ckconv,resnet44", "--epochs", "1", "--seeds", "0",
           "--out", str(out / "cifar"), "--no-report", "--quiet", "--compile", "off"]  # fmt: skip
    if rehearse:
        cmd += ["--device", "cpu", "--set", "train.max_steps_per_epoch=2", "--set", "data.n_train=256", "--set",
                "data.n_test=64"]  # fmt: skip
    proc = run(cmd, timeout=240)
    records = _records(out / "cifar")
    parts = [f"{r['method']} {r['status']} {r.get('epoch_time_s', 0):.0f} s/epoch "
             f"{r.get('throughput_train_samples_s') or 0:,.0f} samples/s {r.get('peak_gpu_mem_mb') or 0:,.0f} MiB"
             for r in records]  # fmt: skip
    ok = proc.returncode == 0 and len(records) == 3 and all(r["status"] == "ok" for r in records)
    ok = ok and (rehearse or all(r["env"]["gpu_name"] and r["fastpath"].get("tf32") for r in records))
    if not ok:
        print(proc.stdout[-3000:], proc.stderr[-3000:], flush=True)
    return line("3 flexconv-cifar epoch", ok, "; ".join(parts) or proc.stderr.strip()[-300:], start)


def step_local_gpus(out: Path, rehearse: bool) -> str:
    start = time.perf_counter()
    cmd = [sys.executable, "run_all.py", "--suite", "smoke", "--datasets", "digits", "--methods", "conv,flexconv,njet,"
           "deformable,dcls,resnet20", "--seeds", "0-1", "--launcher", "local-gpus", "--gpus",
           "cpu,cpu" if rehearse else "0,0", "--out", str(out / "local-gpus"), "--no-report", "--quiet",
           "--compile", "off"]  # fmt: skip
    proc = run(cmd, timeout=180)
    records = _records(out / "local-gpus")
    slots = {r.get("launcher", {}).get("slot") for r in records}
    named = rehearse or all(r["env"]["gpu_name"] and r["env"]["device"] == "cuda" for r in records)
    ok = proc.returncode == 0 and len(records) == 12 and all(r["status"] == "ok" for r in records) and named
    if not ok:
        print(proc.stdout[-3000:], proc.stderr[-3000:], flush=True)
    text = f"{sum(r['status'] == 'ok' for r in records)}/12 ok on slots {sorted(s for s in slots if s is not None)}"
    return line("4 local-gpus " + ("cpu,cpu" if rehearse else "0,0"), ok, text, start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "gpu-validate")
    parser.add_argument("--rehearse", action="store_true", help="without a GPU: the same steps scaled down on the CPU")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.rehearse:
        print(f"gpu_validate: no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda}); "
              "run it on a GPU machine, or add --rehearse to check its steps on the CPU", flush=True)  # fmt: skip
        return 2
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    plugin = args.out / "cifar10_generated.py"
    plugin.write_text(PLUGIN)
    rehearse = not torch.cuda.is_available()
    tests = line("1 GPU tests", True, "skipped: no GPU (rehearsal)", start) if rehearse else step_tests()
    lines = [tests, step_gpu_check("cpu" if rehearse else "cuda", args.out), step_cifar(args.out, plugin, rehearse),
             step_local_gpus(args.out, rehearse)]  # fmt: skip
    failed = [x for x in lines if ": FAILED:" in x]
    summary = f"gpu_validate: {len(lines) - len(failed)}/{len(lines)} steps ok in {time.perf_counter() - start:.0f} s"
    print(summary, flush=True)
    (args.out / "summary.txt").write_text("\n".join([*lines, summary]) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
