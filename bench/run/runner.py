"""Run a grid: skip finished runs, record failures as rows, stop cleanly on Ctrl-C or SIGTERM.

Every run goes through `run_one`: claim it (bench/run/claims.py), train it, write its run file, and
only then remove its checkpoint, so a finished run is never lost. A run another process holds
is left for later and waited for at the end, so several processes on one results folder share
the grid and each run is trained once.
"""

from __future__ import annotations

import datetime as dt
import time
import traceback
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

import datasets
from bench.base import DiskFull, Diverged, UserError, is_disk_full
from bench.run import claims, crossres, kernels, measure, store
from bench.run.claims import one_at_a_time
from bench.run.config import RunConfig
from bench.run.env import environment
from bench.run.protocol import train_run


@dataclass
class Summary:
    counts: Counter = field(default_factory=Counter)  # status -> number of runs (incl. "cached", "elsewhere")
    interrupted: bool = False
    cut_off: list[str] = field(default_factory=list)  # runs stopped mid-way by the interrupt (they resume)

    def line(self) -> str:
        parts = [f"{n} {STATUS_WORDS.get(status, status)}" for status, n in sorted(self.counts.items())]
        if not self.interrupted:
            return f"done: {', '.join(parts) or 'nothing to run'}"
        cut = f"; cut off: {', '.join(self.cut_off)}" if self.cut_off else ""
        return f"interrupted: {', '.join(parts) or 'no run finished'}{cut}; rerun the same command to resume"


STATUS_WORDS = {"elsewhere": "done by another process", "cached": "cached", "no space": "not written: no space left"}


class DataCache:
    """Keeps the last loaded dataset: the grid is ordered so that every method reuses it."""

    def __init__(self, data_root):
        self.data_root, self.key, self.value = data_root, None, None

    def get(self, cfg: RunConfig):
        hold_out = cfg.train.selection != "paper"  # the papers' protocol trains on all the training data
        key = (cfg.dataset, cfg.seed, cfg.train.val_fraction, hold_out, repr(sorted(cfg.data.items())))
        if key != self.key:
            self.key, self.value = None, None  # free the previous one first
            self.value = datasets.get_dataset(
                cfg.dataset, seed=cfg.seed, val_fraction=cfg.train.val_fraction, data_root=self.data_root,
                hold_out=hold_out, **cfg.data,
            )  # fmt: skip
            self.key = key
        return self.value


def _status_of(exc: BaseException) -> str:
    if isinstance(exc, Diverged):
        return "diverged"
    text = str(exc).lower()
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in text:
        return "oom"
    if "can't allocate memory" in text or "defaultcpuallocator" in text:  # torch's CPU allocator out of memory
        return "oom"
    return "failed"


def post_train(cfg: RunConfig, model, data, record: dict, device: str, data_root=None) -> None:
    """What is measured on the trained model, into its record: cost, then the kernels (before crossres rescales
    the model), then the cross-resolution evaluation (which loads the target data from `data_root`)."""
    measure.add_cost(cfg, model, data, record, device)
    kernels.add_kernel_snapshot(cfg, model, data, record, device)
    crossres.add_cross_resolution(cfg, model, data, record, device, data_root=data_root)


CPU_THREADS = 1  # every CPU run computes with this many intra-op threads, whatever the machine or the launcher


@contextmanager
def fixed_threads(device: str):
    """On the CPU, torch's intra-op thread count is CPU_THREADS for the run (then restored): the order in which
    floating-point sums are reduced then depends on nothing but the run, so one run id gives the same metrics on
    1 core or 16, under `--workers 1` or `--workers 8`; the launchers' worker processes provide the parallelism.
    (With 2 threads a last-digit difference moved early stopping by epochs, and results by up to 2.5 points.)"""
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def execute(cfg: RunConfig, device: str, cache: DataCache, progress: bool = True, out: Path | None = None) -> dict:
    """Train one run and return its record; an exception inside training becomes a failure record.

    A UserError (bad input, missing data) is not a failure of the method: it propagates.
    With `out`, the run checkpoints every epoch under <out>/checkpoints/ and resumes from there.
    On the CPU the run computes with CPU_THREADS threads (`fixed_threads`); its record says so in `threads`.
    """
    with fixed_threads(device):
        return _execute(cfg, device, cache, progress, out)


def _execute(cfg: RunConfig, device: str, cache: DataCache, progress: bool, out: Path | None) -> dict:
    record = {"run_id": cfg.run_id, "config": cfg.to_dict(), "method": cfg.method, "dataset": cfg.dataset,
              "seed": cfg.seed, "tags": list(cfg.tags), "env": environment(device),
              "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    start = time.perf_counter()
    data = cache.get(cfg)
    if torch.are_deterministic_algorithms_enabled() != cfg.train.deterministic:  # the first call imports for 2 s
        torch.use_deterministic_algorithms(cfg.train.deterministic, warn_only=True)
    measure.reset_peak_memory(device)
    ckpt = checkpoint_path(out, cfg.run_id) if out is not None else None
    try:
        results = train_run(cfg, data, device, progress, ckpt)
        model = results.pop("model")
        task = {"dim": data.task.dim, "num_classes": data.task.num_classes, "size": data.task.size,
                "causal": data.task.causal, "metric": data.task.metric}  # fmt: skip
        record.update(status="ok", **results, data_info=data.info, task=task)
        post_train(cfg, model, data, record, device, cache.data_root)
    except (UserError, KeyboardInterrupt):
        raise
    except Exception as exc:  # the grid goes on: the failure is a row
        if is_disk_full(exc):  # not the method's failure: the grid stops, the run resumes once there is space
            raise DiskFull.at(Path(exc.filename).parent if getattr(exc, "filename", None) else out or ".") from None
        record.update(status=_status_of(exc), error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=8))  # fmt: skip
    record["wall_time_s"] = time.perf_counter() - start
    record["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return record


def summary_line(record: dict) -> str:
    if record["status"] != "ok":
        return f"{record['status']:>8}  {record['method']} on {record['dataset']} (seed {record['seed']}): {record['error']}"
    m = record["metric"]
    return (
        f"{'ok':>8}  {record['method']} on {record['dataset']} (seed {record['seed']}): "
        f"test {m} {record[f'test_{m}']:.4g}, val {record[f'val_{m}']:.4g}, "
        f"{record['params']:,} params, {record['wall_time_s']:.1f}s"
    )


def checkpoint_path(out: str | Path, run_id: str) -> Path:
    return Path(out) / "checkpoints" / f"{run_id}.pt"


def run_one(cfg: RunConfig, out: str | Path, device: str, cache: DataCache, *, since: float, wait: bool = False,
            force: bool = False, progress: bool = True, where: dict | None = None) -> tuple[str, dict | None]:  # fmt: skip
    """Claim, train and store one run. Returns (status, record); without a record, the status is
    "elsewhere" (another process holds the run; with `wait`, it has finished it) or "cached".

    `since`: when this command started; a run file written after it was written by another
    process sharing the folder, and counts as done whatever its status.
    """
    held = claims.claim(out, cfg.run_id, wait=False)
    if held is None and wait:
        tqdm.write(f"waiting for {cfg.label}: claimed by {claims.holder(out, cfg.run_id) or 'another process'}")
        held = claims.claim(out, cfg.run_id, wait=True)
    if held is None:
        return "elsewhere", None
    with held:
        if store.written_since(out, cfg.run_id, since):
            return "elsewhere", None
        if not force and store.status_of(out, cfg.run_id) == "ok":
            return "cached", None
        with one_at_a_time(Path(out) / ".data.lock"):  # a download happens once, whoever asks first
            cache.get(cfg)
        record = execute(cfg, device, cache, progress, out)
        if where is not None:
            record["launcher"] = where
        store.write_run(out, record)
        checkpoint_path(out, cfg.run_id).unlink(missing_ok=True)  # only now: the run file holds what matters
    return record["status"], record


def run_grid(runs: list[RunConfig], out: str | Path, device: str, *, data_root=None, force: bool = False,
             progress: bool = True, since: float | None = None) -> Summary:  # fmt: skip
    """Train `runs` one after the other in this process; runs another process holds are waited for last."""
    summary, cache = Summary(), DataCache(data_root)
    since = time.time() if since is None else since
    bar = tqdm(total=len(runs), desc="grid", unit="run", disable=not progress)
    queue, later, current = deque((c, False) for c in runs), [], None
    try:
        while queue or later:
            if not queue:  # second pass: wait for the runs other processes hold
                queue, later = deque((c, True) for c in later), []
            cfg, wait = queue.popleft()
            current = cfg
            bar.set_postfix_str(f"{cfg.method}/{cfg.dataset}/s{cfg.seed}")
            status, record = run_one(cfg, out, device, cache, since=since, wait=wait, force=force, progress=progress)
            current = None
            if status == "elsewhere" and not wait:
                later.append(cfg)
                continue
            summary.counts[status] += 1
            bar.update()
            if record is not None:
                tqdm.write(summary_line(record))
    except KeyboardInterrupt:
        summary.interrupted = True
        if current is not None:
            summary.cut_off.append(current.label)
    finally:
        bar.close()
    return summary
