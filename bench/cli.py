"""The command line behind run_all.py: `run` (default), `list`, `report`."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.base import DiskFull, UserError, is_disk_full

EPILOG = """examples:
  python run_all.py                                   # the cpu suite (converged, 3 seeds, < 10 min), tables, plots
  python run_all.py --suite smoke                     # a 1-minute check of every method
  python run_all.py --methods 'flexconv*,conv' --datasets sdigits --seeds 0-2 --epochs 5
  python run_all.py --set train.lr=0.01 --set model.width=16
  python run_all.py list                              # methods and datasets
  python run_all.py report                            # rebuild tables and plots from stored runs
  python run_all.py fetch --suite flexconv-cifar      # download a suite's datasets (before going offline)
  python run_all.py fit                               # kernel fitting: every kernel net on the papers' targets
"""


DEFAULT_SUITE = "cpu"
STARTED = time.perf_counter()  # this module is imported first: the wall time a user waits, imports included


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every other bad input
        raise UserError(message)


def make_parser() -> Parser:
    p = Parser(prog="run_all.py", description="LKSBench: learned kernel sizes, one protocol.", epilog=EPILOG,
               formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument(
        "command", nargs="?", default="run", choices=["run", "list", "report", "fetch", "check-readme", "fit"]
    )
    p.add_argument("--suite", default=DEFAULT_SUITE, help=f"named suite (default: {DEFAULT_SUITE}); see `list`")
    p.add_argument("--methods", help="comma list of method names or globs")
    p.add_argument("--datasets", help="comma list of dataset names or globs")
    p.add_argument("--seeds", help="e.g. 0,1,2 or 0-4 (default: the suite's)")
    p.add_argument("--epochs", type=int, help="override the suite's epochs")
    p.add_argument("--budget", type=float, default=1.0, help="fraction of the suite's epochs (rows are marked)")
    p.add_argument("--selection", choices=["val", "paper"],
                   help="val (default): select on a validation split carved from the training data, test once; "
                        "paper: the FlexConv/CKConv code's protocol, all training data and the best test metric over "
                        "epochs (rows are marked 'paper protocol')")  # fmt: skip
    p.add_argument("--match", metavar="params|flops[=N]",
                   help="scale each method's backbone width to conv's parameter count or FLOPs (or to N); rows are marked")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--out", help="results folder (default: results/<suite>/)")
    p.add_argument("--data-root", help="where real datasets live (default: $LKSBENCH_DATA or ./data)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override train.*, model.* or data.* settings (repeatable)")  # fmt: skip
    p.add_argument("--tune", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="search these values for every method (repeatable; trials are selected on validation)")  # fmt: skip
    p.add_argument("--plugin", action="append", default=[], help="a .py file or module that registers methods/datasets")
    p.add_argument("--dry-run", action="store_true", help="print the grid and exit")
    p.add_argument("--force", action="store_true", help="redo runs that already finished")
    p.add_argument("--no-report", action="store_true", help="do not rebuild tables and plots after running")
    p.add_argument("--report-out", metavar="DIR",
                   help="write tables, plots and REPORT.md here instead of into --out (e.g. --out is read-only)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--compare-references", action="store_true",
                   help="report: the MNIST-1D paper's models join the comparison family of the marks")  # fmt: skip
    p.add_argument(
        "--readme", default="README.md", help="check-readme: the README whose generated conclusions to check"
    )
    p.add_argument("--compile", choices=["auto", "off", "model", "graph"], nargs="?", const="graph",
                   help="torch.compile the training step: auto (default: graph on CUDA where shapes are fixed or "
                        "bucketed, off on the CPU), off, model, graph (CUDA graphs); the same as --set train.compile=")  # fmt: skip
    g = p.add_argument_group("launchers (see docs: running on several GPUs or a SLURM cluster)")
    g.add_argument("--launcher", default="local", help="local (default), local-gpus, slurm, or a plugin's")
    g.add_argument("--workers", help="local: worker processes (default auto: one per CPU core on the CPU; on a GPU, "
                   "N runs share it, as --runs-per-gpu N)")  # fmt: skip
    g.add_argument("--runs-per-gpu", help="local on a GPU, local-gpus: runs that train on one GPU at once (default 1)")
    g.add_argument("--gpus", help="local-gpus: GPU ids, one worker each, e.g. 0,1,2,3 (default: all); cpu,cpu on CPU")
    g.add_argument("--slurm-cluster", help="slurm (default) or local (the same jobs as local processes)")
    g.add_argument("--slurm-partition", help="SLURM partition")
    g.add_argument("--slurm-time", help="time limit per job: minutes or SLURM's [d-]h:mm:ss (default: 240)")
    g.add_argument("--slurm-gpus", type=int, help="GPUs per job (default: 1)")
    g.add_argument("--slurm-array-parallelism", type=int, help="jobs of an array running at once")
    g.add_argument("--slurm-set", action="append", metavar="KEY=VALUE",
                   help="any other submitit/SLURM job setting, e.g. account=proj, qos=high, mem_gb=32 (repeatable)")  # fmt: skip
    return p


LAUNCHER_FLAGS = ("workers", "runs_per_gpu", "gpus", "slurm_cluster", "slurm_partition", "slurm_time", "slurm_gpus", "slurm_array_parallelism",
                  "slurm_set")  # fmt: skip


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def cmd_list() -> None:
    # lazy: a command loads only what it uses (torch takes seconds; --help and bad flags answer at once)
    import datasets
    import methods
    from bench.papers import all_suites

    print("Methods:")
    for name in methods.list_methods():
        c = methods.card_of(name)
        dims = "/".join(f"{d}D" for d in c.dims)
        flags = ", ".join(f for f, on in [("causal", c.causal and 1 in c.dims), ("learned size", c.learned_size),
                                         ("any resolution", c.resolution_change)] if on)  # fmt: skip
        print(f"  {name:<18} {c.kind:<5} {dims:<6} {c.description}" + (f" [{flags}]" if flags else ""))
    print("\nDatasets:")
    for name in datasets.list_datasets():
        c = datasets.get_entry(name).card
        classes = f"{c.classes} classes" if c.classes else "regression"
        print(f"  {name:<14} {datasets.shape_text(name):<26} {classes:<12} {c.source:<9} {c.description}")
    print("\nSuites:")
    for name, suite in all_suites().items():
        print(f"  {name:<18} {suite.description}")
    from bench.cost.gpu_check import DESCRIPTION  # lazy, as above
    from bench.launchers import LAUNCHERS

    print(f"  {'gpu-check':<18} {DESCRIPTION}")
    print(f"  {'kernel-fit':<18} kernel nets fitted to the papers' target kernels, 1D and 2D (also: run_all.py fit)")

    print("\nLaunchers:")
    for entry in LAUNCHERS.load_all():
        print(f"  {entry.name:<18} {entry.card.description}")


def cmd_run(args, signals: list) -> int:
    # lazy: a command loads only what it uses (torch takes seconds; --help and bad flags answer at once)
    from bench.launchers import LAUNCHERS, LaunchContext, launch
    from bench.papers import get_suite
    from bench.report.trials import trial_value
    from bench.run.config import parse_overrides, parse_tune
    from bench.run.env import resolve_device
    from bench.run.grid import build_grid, check_models, parse_seeds

    LAUNCHERS.get(args.launcher)  # an unknown name fails before anything runs
    if args.launcher == "local":
        resolve_device(args.device)
    if args.compile:  # part of each run's configuration (its id when not auto), so workers and jobs get it too
        args.overrides = [*args.overrides, f"train.compile={args.compile}"]
    if args.suite == "gpu-check":  # not a grid: a timing check of every method on generated inputs
        from bench.cost import gpu_check  # lazy, as above

        return gpu_check.main(args)
    if args.suite == "kernel-fit":  # not a grid either: kernel nets fitted to target kernels
        from bench.report import kernel_fit  # lazy, as above

        return kernel_fit.main(args)
    overrides = parse_overrides(args.overrides)
    if args.selection:
        overrides["train"]["selection"] = args.selection
    grid = build_grid(
        get_suite(args.suite),
        methods_sel=_split(args.methods),
        datasets_sel=_split(args.datasets),
        seeds=parse_seeds(args.seeds) if args.seeds else None,
        epochs=args.epochs,
        overrides=overrides,
        budget=args.budget,
        tune=parse_tune(args.tune),
    )
    if args.match:
        from bench.run.match import apply_match  # lazy, as above

        runs, lines = apply_match(grid.runs, args.match)
        grid = dataclasses.replace(grid, runs=runs)
        print("\n".join(lines))
    check_models(grid, overrides)
    for method, dataset, reason in grid.unsupported:
        print(f"  skip {method} on {dataset}: {reason}")
    if args.dry_run:
        for cfg in grid.runs:
            trial = "".join(f" {key}={trial_value(cfg, key)}" for key in cfg.search)
            variant = "".join(f"  {t}" for t in cfg.tags if t.startswith("variant:"))  # a suite's data variant
            print(f"{cfg.run_id}  {cfg.method:<18} {cfg.dataset:<12} seed {cfg.seed}  model={cfg.model} "
                  f"epochs={max(1, round(cfg.train.epochs * cfg.budget))}" + (f"  trial:{trial}" if trial else "")
                  + variant)  # fmt: skip
        print(f"{len(grid.runs)} runs, {len(grid.unsupported)} unsupported method/dataset pairs")
        return 0
    writable_folder(args.out, "--out")  # before anything trains: a result that cannot be written is lost
    options = {k: getattr(args, k) for k in LAUNCHER_FLAGS if getattr(args, k) is not None}
    ctx = LaunchContext(args.out, args.device, args.data_root, args.force, not args.quiet, tuple(args.plugin), options)
    summary = launch(args.launcher, grid.runs, ctx)
    print(summary.line())
    if summary.interrupted:
        return 143 if signals else 130
    if summary.counts.get("no space"):  # jobs that found the disk full (SLURM): their runs are redone by a rerun
        raise UserError(f"{summary.counts['no space']} runs found no space left in {args.out}; free some space and "
                        "rerun the same command")  # fmt: skip
    if not args.no_report:
        cmd_report(args)
    print(f"wall time: {fmt_duration(time.perf_counter() - STARTED)}")
    return 0


def cmd_check_readme(args, signals: list) -> int:
    """Run the suite here (finished runs are kept), rebuild its report, and say whether the README's generated
    conclusions hold on this machine: 0 when they all do, 1 when one does not."""
    from bench.report import conclusions  # lazy, as above

    args.no_report = False
    status = cmd_run(args, signals)
    if status:
        return status
    lines, ok = conclusions.check(Path(args.readme), Path(args.report_out or args.out) / "tables")
    for line in lines:
        print(line)
    return 0 if ok else 1


def fmt_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{seconds:.1f} s"


def cmd_fetch(args) -> None:
    """Download (or check) the datasets of a suite or a --datasets list, e.g. on a login node before SLURM."""
    # lazy: a command loads only what it uses (torch takes seconds; --help and bad flags answer at once)
    import datasets
    from bench.papers import get_suite
    from bench.run.grid import expand_datasets

    suite = get_suite(args.suite)
    for name in expand_datasets(_split(args.datasets) or list(suite.datasets)):
        options = {k: v for k, v in suite.data.get(name, {}).items() if k != "resolution"}
        splits = datasets.get_dataset(name, data_root=args.data_root, **options)
        print(f"  {name:<12} ok: {len(splits.train)} train, {len(splits.val)} val, {len(splits.test)} test")


def writable_folder(path: str, flag: str) -> str:
    """`path` as a folder this process can write into (created if needed), or a one-line UserError."""
    if not path.strip():
        raise UserError(f"{flag} names no folder (got an empty string)")
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{flag} {path}: exists and is not a folder")
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        hint = " (to rebuild only its tables elsewhere: run_all.py report --out DIR --report-out OTHER)" if (
            flag == "--out" and os.path.isdir(path)) else ""  # fmt: skip
        raise UserError(f"{flag} {path}: cannot write there ({exc.strerror or exc}){hint}") from None
    return path


def cmd_report(args) -> None:
    from bench.report.build import build_report  # lazy, as above

    if not os.path.isdir(args.out):
        raise UserError(f"--out {args.out}: no such folder (the results folder to read runs from)")
    dest = writable_folder(args.report_out or args.out, "--report-out" if args.report_out else "--out")
    try:
        lines = build_report(args.out, dest, include_reference=getattr(args, "compare_references", False))
    except OSError as exc:  # a full disk, a folder made read-only mid-way
        raise UserError(f"cannot write the report into {dest}: {exc.strerror or exc}") from None
    for line in lines:
        print(line)


def default_out(args) -> None:
    """Each suite writes to its own folder unless --out says otherwise (a smoke run never touches the cpu suite's)."""
    if args.out is None:  # gpu-check's file belongs with the other speed figures, in results/perf/
        args.out = "results" if args.suite == "gpu-check" else os.path.join("results", args.suite)


def main(argv: list[str] | None = None) -> int:
    """The CLI; SIGTERM (what a cluster sends before a kill) stops it the way Ctrl-C does, with status 143."""
    signals: list[int] = []

    def on_term(signum, frame):
        signals.append(signum)
        raise KeyboardInterrupt

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if in_main else None
    try:
        return _main(argv, signals)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None, signals: list[int]) -> int:
    args = None
    try:
        args = make_parser().parse_args(argv)
        if args.command == "fit":
            args.command, args.suite = "run", "kernel-fit"
        default_out(args)
        from bench.run.plugins import load_plugin  # lazy, as above

        for spec in args.plugin:
            load_plugin(spec)
        if args.command == "list":
            cmd_list()
            return 0
        if args.command == "report":
            cmd_report(args)
            return 0
        if args.command == "fetch":
            cmd_fetch(args)
            return 0
        if args.command == "check-readme":
            return cmd_check_readme(args, signals)
        return cmd_run(args, signals)
    except UserError as exc:
        print(f"run_all.py: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk anywhere else (a claim, a lock file): one line too
        if not is_disk_full(exc):
            raise
        folder = os.path.dirname(exc.filename) if exc.filename else getattr(args, "out", None) or "."
        print(f"run_all.py: error: {DiskFull.at(folder)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 143 if signals else 130
