"""Run a grid: skip finished runs, record failures as rows, stop cleanly on Ctrl-C."""

from __future__ import annotations

import datetime as dt
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from bench import measure, store
from bench.config import RunConfig
from bench.env import environment
from bench.errors import Diverged, UserError


@dataclass
class Summary:
    counts: Counter = field(default_factory=Counter)  # status -> number of runs (incl. "cached")
    interrupted: bool = False

    def line(self) -> str:
        parts = [f"{n} {status}" for status, n in sorted(self.counts.items())]
        head = "interrupted" if self.interrupted else "done"
        tail = "; rerun the same command to resume" if self.interrupted else ""
        return f"{head}: {', '.join(parts) or 'nothing to run'}{tail}"


class DataCache:
    """Keeps the last loaded dataset: the grid is ordered so that every method reuses it."""

    def __init__(self, data_root):
        self.data_root, self.key, self.value = data_root, None, None

    def get(self, cfg: RunConfig):
        import datasets

        key = (cfg.dataset, cfg.seed, cfg.train.val_fraction, repr(sorted(cfg.data.items())))
        if key != self.key:
            self.key, self.value = None, None  # free the previous one first
            self.value = datasets.get_dataset(
                cfg.dataset, seed=cfg.seed, val_fraction=cfg.train.val_fraction, data_root=self.data_root, **cfg.data
            )
            self.key = key
        return self.value


def _status_of(exc: BaseException) -> str:
    if isinstance(exc, Diverged):
        return "diverged"
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower():
        return "oom"
    return "failed"


# Steps run after training, each `fn(cfg, model, data, record, device)` adding to the record
# (cost measures, cross-resolution evaluation); named "module:function", imported when used.
# A step that loads more data declares a `data_root` keyword and gets the run's data root.
POST_TRAIN_STEPS: list[str] = [
    "bench.measure:add_cost",
    "bench.kernels:add_kernel_snapshot",  # before crossres changes the model
    "bench.crossres:add_cross_resolution",
]


def post_train(cfg: RunConfig, model, data, record: dict, device: str, data_root=None) -> None:
    import importlib
    import inspect

    for step in POST_TRAIN_STEPS:
        module, _, name = step.partition(":")
        fn = getattr(importlib.import_module(module), name)
        extra = {"data_root": data_root} if "data_root" in inspect.signature(fn).parameters else {}
        fn(cfg, model, data, record, device, **extra)


def execute(cfg: RunConfig, device: str, cache: DataCache, progress: bool = True, out: Path | None = None) -> dict:
    """Train one run and return its record; an exception inside training becomes a failure record.

    A UserError (bad input, missing data) is not a failure of the method: it propagates.
    With `out`, the run checkpoints every epoch under <out>/checkpoints/ and resumes from there.
    """
    from bench.protocol import train_run

    record = {"run_id": cfg.run_id, "config": cfg.to_dict(), "method": cfg.method, "dataset": cfg.dataset,
              "seed": cfg.seed, "tags": list(cfg.tags), "env": environment(device),
              "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
    start = time.perf_counter()
    data = cache.get(cfg)
    if torch.are_deterministic_algorithms_enabled() != cfg.train.deterministic:  # the first call imports for 2 s
        torch.use_deterministic_algorithms(cfg.train.deterministic, warn_only=True)
    measure.reset_peak_memory(device)
    ckpt = Path(out) / "checkpoints" / f"{cfg.run_id}.pt" if out is not None else None
    try:
        results = train_run(cfg, data, device, progress, ckpt)
        model = results.pop("model")
        record.update(status="ok", **results, data_info=data.info)
        post_train(cfg, model, data, record, device, cache.data_root)
    except (UserError, KeyboardInterrupt):
        raise
    except Exception as exc:  # the grid goes on: the failure is a row
        record.update(status=_status_of(exc), error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=8))  # fmt: skip
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)  # the run file is about to hold everything that matters
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


def run_grid(runs: list[RunConfig], out: str | Path, device: str, *, data_root=None, force: bool = False,
             progress: bool = True) -> Summary:  # fmt: skip
    summary, cache = Summary(), DataCache(data_root)
    todo = [cfg for cfg in runs if force or store.status_of(out, cfg.run_id) != "ok"]
    summary.counts["cached"] = len(runs) - len(todo)
    if summary.counts["cached"] == 0:
        del summary.counts["cached"]
    bar = tqdm(todo, desc="grid", unit="run", disable=not progress)
    try:
        for cfg in bar:
            bar.set_postfix_str(f"{cfg.method}/{cfg.dataset}/s{cfg.seed}")
            record = execute(cfg, device, cache, progress, out)
            store.write_run(out, record)
            summary.counts[record["status"]] += 1
            tqdm.write(summary_line(record))
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
    return summary
