"""How fast a grid of runs goes through the harness: `python -m bench.cost.perf_suite [--rounds N]`.

The same fixed grid (FIXED below: 4 methods x 2 embedded datasets x 2 seeds, 5 epochs each, no
early stopping) is run, in one session, three ways, each as a fresh `run_all.py` process into
an empty results folder:

- `baseline`: the harness as it was before the speed work (git commit BASELINE, exported to a
  temporary folder): one process, torch's default threads (one per core);
- `1 process`: this code with `--workers 1` (one process, torch's default threads);
- `workers`: this code as `python run_all.py` runs it (one worker process per core, one thread each).

The rounds are interleaved (baseline, 1 process, workers, baseline, ...) so that the machine's
load affects each way alike; the report is the median wall time per way and runs per minute,
and the ratio to the baseline. The MNIST-1D disk cache is warm for this code (as after any
first run); the baseline regenerates it in its process, as it always did. Results:
results/perf/suite_<device>.csv. Determinism holds at a fixed thread count only: the same run
with 1 and with 2 threads differs in the last digits, which is why run files record `threads`.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "results" / "perf"
BASELINE = "688186c"  # the landed harness before the converged-default work (issue 10)

# A plugin that both the baseline and this code load: the same suite, written against the Suite
# API they share (the old quick suite's backbones and training settings).
PLUGIN = """
try:
    from bench.run.suite import Suite, add_suite
except ImportError:  # the baseline's layout
    from bench.suites import Suite, add_suite

add_suite(Suite(
    name="perf-grid",
    description="bench/cost/perf_suite.py: a fixed grid for timing the harness",
    methods=("conv", "flexconv", "njet", "dcls"),
    datasets=("mnist1d", "digits"),
    seeds=(0, 1),
    train=dict(epochs=5, batch_size=64, lr=3e-3, warmup_epochs=0.5),
    model_by_dim={1: dict(arch="flextcn2", width=16, dropout=0.1), 2: dict(arch="flexnet3", width=8, dropout=0.1)},
    model_by_dataset={"digits": dict(mask_init=0.3)},
))
"""
RUNS = 4 * 2 * 2


def export_baseline(folder: Path) -> Path:
    """The baseline commit's files in `folder` (git archive: no checkout of this working tree changes)."""
    proc = subprocess.run(["git", "-C", str(REPO), "archive", BASELINE], capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"perf_suite needs the git history with commit {BASELINE}: {proc.stderr.decode().strip()}")
    archive = proc.stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def timed(code: Path, args: list[str], out: Path, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "run_all.py", *args, "--out", str(out), "--no-report", "--quiet"],
                          cwd=code, env=env, capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - start
    ok = proc.stdout.count(" ok ")
    if proc.returncode != 0 or ok != RUNS:
        raise SystemExit(
            f"{code}: {ok}/{RUNS} runs ok, exit {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return wall


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three ways (default 2)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plugin = tmp / "perf_plugin.py"
        plugin.write_text(PLUGIN)
        (tmp / "baseline").mkdir()
        baseline = export_baseline(tmp / "baseline")
        data = REPO / "data"
        env = {**os.environ, "LKSBENCH_DATA": str(data)}
        grid = ["--plugin", str(plugin), "--suite", "perf-grid"]
        subprocess.run([sys.executable, "-c", "import datasets; datasets.get_dataset('mnist1d')"], cwd=REPO,
                       env=env, check=True)  # the disk cache this code reads, warm as after any first run  # fmt: skip
        ways = {"baseline": (baseline, []), "1 process": (REPO, ["--workers", "1"]), "workers": (REPO, [])}
        walls: dict[str, list[float]] = {w: [] for w in ways}
        for r in range(args.rounds):
            for way, (code, extra) in ways.items():
                walls[way].append(timed(code, grid + extra, tmp / f"out-{way}-{r}", env))
                print(f"round {r + 1}: {way:<10} {walls[way][-1]:6.1f} s", flush=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    base = statistics.median(walls["baseline"])
    rows = []
    for way, values in walls.items():
        median = statistics.median(values)
        rows.append({"way": way, "device": "cpu", "cores": cores, "runs": RUNS, "rounds": len(values),
                     "wall_s_median": round(median, 1), "walls_s": " ".join(f"{v:.1f}" for v in values),
                     "runs_per_min": round(60 * RUNS / median, 2), "speedup_vs_baseline": round(base / median, 2),
                     "load_avg_end": round(os.getloadavg()[0], 2)})  # fmt: skip
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "suite_cpu.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for row in rows:
        print(f"{row['way']:<10} median {row['wall_s_median']:6.1f} s  {row['runs_per_min']:5.1f} runs/min  "
              f"{row['speedup_vs_baseline']:.2f}x the baseline")  # fmt: skip
    print(f"-> {path}")


if __name__ == "__main__":
    main()
