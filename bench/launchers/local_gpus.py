"""`--launcher local-gpus --gpus 0,1,2,3`: one worker process per slot, each run pinned to one GPU.

A slot is a GPU id (as numbered by torch in the driver, i.e. within CUDA_VISIBLE_DEVICES) or
`cpu`; a repeated id gives that GPU several workers (small models leave a GPU mostly idle).
Each worker sees only its GPU (CUDA_VISIBLE_DEVICES), takes runs from a shared queue, trains
and writes each run's file itself, and sends the driver one line per run. CPU slots
(`--gpus cpu,cpu`) exercise the same path without a GPU.

If the driver dies, each worker finishes the run it is on, writes it and exits; rerunning the
command resumes. A worker that dies in a run (segfault, killed) gets a failure row for that run
and a replacement.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from contextlib import contextmanager

from tqdm.auto import tqdm

from bench.errors import UserError
from bench.launchers import LaunchContext, prepare_worker, register_launcher, run_and_store

POLL_S = 0.5  # how often a waiting driver or worker checks that the other side is alive


def parse_gpus(text: str | None) -> list[str]:
    """`0,1,2,3` / `0,0,1,1` / `cpu,cpu` / `all` (default: every visible GPU) -> one slot per entry."""
    import torch

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


def visible_id(slot: str) -> str:
    """The CUDA_VISIBLE_DEVICES value that shows a worker only GPU `slot` as the driver numbers it."""
    outer = os.environ.get("CUDA_VISIBLE_DEVICES")
    if outer is None:
        return slot
    return [d.strip() for d in outer.split(",")][int(slot)]


@contextmanager
def _environment(**values: str | None):
    """Set environment variables for a child about to be spawned (it copies the environment at start)."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def worker(slot: int, gpu: str, tasks, results, ctx: LaunchContext, threads: int) -> None:
    """A worker process: runs from `tasks` until a None (or the driver is gone), one message per run."""
    import torch

    from bench.config import RunConfig
    from bench.runner import DataCache

    torch.set_num_threads(threads)
    results.cancel_join_thread()  # never hang at exit on messages a dead driver will not read
    prepare_worker(ctx)
    device = "cpu" if gpu == "cpu" else "cuda"
    where = {"name": "local-gpus", "slot": slot, "gpu": gpu}
    cache, parent = DataCache(ctx.data_root), mp.parent_process()
    try:
        while True:
            try:
                item = tasks.get(timeout=POLL_S)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return
                continue
            if item is None:
                return
            cfg = RunConfig.from_dict(item)
            results.put(("start", slot, cfg.run_id))
            record = run_and_store(cfg, ctx, device, cache, where)
            results.put(("done", slot, (record["status"], record) if record else ("cached", None)))
            if parent is not None and not parent.is_alive():
                return  # the driver is gone: stop after the run in hand, a rerun does the rest
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the terminal; the driver reports it
        return
    except UserError as exc:  # bad input (e.g. missing data): the driver stops the grid with this message
        results.put(("error", slot, str(exc)))


def _died_in_run(cfg, slot: int, gpu: str, exitcode, ctx: LaunchContext) -> dict:
    """A failure row for a run whose worker process died under it."""
    from bench import store

    record = {"run_id": cfg.run_id, "config": cfg.to_dict(), "method": cfg.method, "dataset": cfg.dataset,
              "seed": cfg.seed, "tags": list(cfg.tags), "status": "failed",
              "error": f"the worker process died during the run (exit code {exitcode})",
              "launcher": {"name": "local-gpus", "slot": slot, "gpu": gpu}}  # fmt: skip
    store.write_run(ctx.out, record)
    return record


@register_launcher("local-gpus", "one worker process per GPU (--gpus 0,1,2,3; cpu,cpu to try it)", ("gpus",))
def local_gpus(runs: list, ctx: LaunchContext):
    from bench.runner import Summary, summary_line

    if ctx.device != "auto":
        raise UserError("--launcher local-gpus places runs itself: choose devices with --gpus, not --device")
    slots = parse_gpus(ctx.options.get("gpus"))
    summary = Summary()
    if not runs:
        return summary
    spawn = mp.get_context("spawn")  # fresh processes: CUDA state is never inherited
    tasks, results = spawn.Queue(), spawn.Queue()
    by_id = {cfg.run_id: cfg for cfg in runs}
    for cfg in runs:
        tasks.put(cfg.to_dict())
    for _ in slots:
        tasks.put(None)
    threads = max(1, (os.cpu_count() or 1) // len(slots))

    def start(slot: int):
        gpu = slots[slot]
        env = {"CUDA_VISIBLE_DEVICES": "" if gpu == "cpu" else visible_id(gpu)}
        proc = spawn.Process(target=worker, args=(slot, gpu, tasks, results, ctx, threads), daemon=False)
        with _environment(**env):
            proc.start()
        return proc

    print(f"{len(runs)} runs to do on {len(slots)} workers ({', '.join(slots)}), results in {ctx.out}/runs/")
    procs = [start(i) for i in range(len(slots))]
    current: dict[int, str] = {}  # slot -> run id in progress
    done = 0
    bar = tqdm(total=len(runs), desc="grid", unit="run", disable=not ctx.progress)
    try:
        while done < len(runs):
            try:
                kind, slot, payload = results.get(timeout=POLL_S)
            except queue.Empty:
                for slot, proc in enumerate(procs):
                    if not proc.is_alive() and slot in current:
                        record = _died_in_run(by_id[current.pop(slot)], slot, slots[slot], proc.exitcode, ctx)
                        summary.counts["failed"] += 1
                        done += 1
                        bar.update()
                        tqdm.write(summary_line(record))
                        procs[slot] = start(slot)
                if not any(p.is_alive() for p in procs):
                    tqdm.write(f"every worker has exited with {len(runs) - done} runs not done; rerun to resume")
                    summary.interrupted = True
                    break
                continue
            if kind == "start":
                current[slot] = payload
                continue
            if kind == "error":
                summary.interrupted = True  # the other workers are stopped; their runs resume from checkpoints
                raise UserError(payload)
            status, record = payload
            current.pop(slot, None)
            summary.counts[status] += 1
            done += 1
            bar.update()
            if record is not None:
                tqdm.write(f"[{slots[slot]}#{slot}] {summary_line(record)}")
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
        for proc in procs:
            proc.join(timeout=10 if summary.interrupted else 60)  # the workers have their end-of-queue marks
            if proc.is_alive():
                proc.terminate()
                proc.join()
    return summary
