"""A pool of worker processes on this machine, one per slot (a GPU id or `cpu`), fed by the driver.

Used by `local` with --workers N (N CPU slots, one thread each) and by `local-gpus` (one slot
per GPU entry). Each worker sees only its GPU (CUDA_VISIBLE_DEVICES), asks the driver for a
run, trains it through runner.run_one (claim, train, write the run file) and reports back.
The driver hands every run out once, in grid order; a run another process holds (a second
command on the same folder) comes back and is handed out again at the end, to wait for.

If the driver dies, each worker finishes the run it is on, writes it and exits. If the driver
is interrupted (Ctrl-C, SIGTERM), it stops its workers too (their runs keep their last epoch's
checkpoint) and counts only what finished. A worker that dies in a run (segfault, killed) gets
a failure row for that run and a replacement.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time
from collections import Counter, deque
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from bench.base import DiskFull, UserError, is_disk_full
from bench.launchers import LaunchContext, prepare_worker
from bench.run import store
from bench.run.config import RunConfig
from bench.run.runner import DataCache, Summary, run_one, summary_line

POLL_S = 0.5  # how often a waiting driver or worker checks that the other side is alive


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
        _put_environment(values)
        yield
    finally:
        _put_environment(saved)


def _put_environment(values: dict[str, str | None]) -> None:
    for key, value in values.items():  # None: unset
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def interrupt_on_sigterm() -> None:
    """SIGTERM (what a cluster or `kill` sends) stops the process the way Ctrl-C does."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def worker(
    slot: int, gpu: str, tasks, results, ctx: LaunchContext, threads: int, since: float, name: str, sharing: int = 1
) -> None:
    """A worker process: runs from `tasks` until a None (or the driver is gone), one message per run."""
    interrupt_on_sigterm()
    torch.set_num_threads(threads)
    results.cancel_join_thread()  # never hang at exit on messages a dead driver will not read
    cfg = None
    try:
        prepare_worker(ctx)
        device = "cpu" if gpu == "cpu" else "cuda"
        where = {"name": name, "slot": slot, "gpu": gpu, "runs_per_gpu": sharing}  # sharing: workers on that GPU
        cache, parent = DataCache(ctx.data_root), mp.parent_process()
        results.put(("ready", slot, None))
        while True:
            try:
                item = tasks.get(timeout=POLL_S)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return
                continue
            if item is None:
                return
            cfg, wait = RunConfig.from_dict(item[0]), item[1]
            results.put(("start", slot, cfg.run_id))
            status, record = run_one(cfg, ctx.out, device, cache, since=since, wait=wait, force=ctx.force,
                                     progress=False, where=where)  # fmt: skip
            results.put(("done", slot, (cfg.run_id, status, record)))
            cfg = None
            if parent is not None and not parent.is_alive():
                return  # the driver is gone: stop after the run in hand, a rerun does the rest
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the terminal; the driver reports it
        results.put(("stopped", slot, cfg.run_id if cfg is not None else None))
    except UserError as exc:  # bad input (e.g. missing data), a full disk: the driver stops the grid with this message
        # first: the driver stops every worker at once on an error, and this one is exiting anyway
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        results.put(("error", slot, str(exc)))
    except OSError as exc:  # a full disk outside a run's writes (a claim file): said the same way, not a dead worker
        if not is_disk_full(exc):
            raise
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        results.put(("error", slot, str(DiskFull.at(ctx.out))))
    finally:  # from here on the process only exits: a SIGTERM ends it quietly, not inside an exit handler
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _died_in_run(cfg, slot: int, gpu: str, exitcode, ctx: LaunchContext, name: str) -> dict:
    """A failure row for a run whose worker process died under it (never over a finished record)."""
    record = {"run_id": cfg.run_id, "config": cfg.to_dict(), "method": cfg.method, "dataset": cfg.dataset,
              "seed": cfg.seed, "tags": list(cfg.tags), "status": "failed",
              "error": f"the worker process died during the run (exit code {exitcode})",
              "launcher": {"name": name, "slot": slot, "gpu": gpu}}  # fmt: skip
    store.write_run(ctx.out, record)
    return record


def run_pool(runs: list, ctx: LaunchContext, slots: list[str], threads: int, name: str):
    """Train `runs` on one worker process per slot (`name`: the launcher, for the run files); a Summary."""
    summary = Summary(counts=Counter())
    if not runs:
        return summary
    since = time.time()
    spawn = mp.get_context("spawn")  # fresh processes: CUDA state is never inherited
    results = spawn.Queue()
    tasks = [spawn.Queue() for _ in slots]
    by_id = {cfg.run_id: cfg for cfg in runs}
    pending, later, waited = deque(runs), deque(), set()  # waited: run ids handed out to wait for
    current: dict[int, str] = {}  # slot -> run id in progress
    done = 0

    def start(slot: int):
        gpu = slots[slot]
        env = {"CUDA_VISIBLE_DEVICES": "" if gpu == "cpu" else visible_id(gpu)}
        sharing = 1 if gpu == "cpu" else slots.count(gpu)
        proc = spawn.Process(target=worker, args=(slot, gpu, tasks[slot], results, ctx, threads, since, name, sharing),
                             daemon=False)  # fmt: skip
        with _environment(**env):
            proc.start()
        return proc

    def dispatch(slot: int) -> None:
        """The next run for an idle worker: new ones first, then those another process held (to wait for)."""
        if pending:
            tasks[slot].put((pending.popleft().to_dict(), False))
        elif later:
            cfg = later.popleft()
            waited.add(cfg.run_id)
            tasks[slot].put((cfg.to_dict(), True))

    where = f"{len(slots)} workers ({', '.join(slots)}" + (f", {threads} thread{'s' * (threads > 1)} each)")
    print(f"{len(runs)} runs to do on {where}, results in {ctx.out}/runs/")
    procs = [start(i) for i in range(len(slots))]
    bar = tqdm(total=len(runs), desc="grid", unit="run", disable=not ctx.progress)
    try:
        while done < len(runs):
            try:
                kind, slot, payload = results.get(timeout=POLL_S)
            except queue.Empty:
                for slot, proc in enumerate(procs):
                    if not proc.is_alive() and slot in current:
                        record = _died_in_run(by_id[current.pop(slot)], slot, slots[slot], proc.exitcode, ctx, name)
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
            if kind == "ready":
                dispatch(slot)
            elif kind == "start":
                current[slot] = payload
            elif kind == "error":
                summary.interrupted = True  # the other workers are stopped; their runs resume from checkpoints
                raise UserError(payload)
            elif kind == "stopped":
                raise KeyboardInterrupt
            else:
                run_id, status, record = payload
                current.pop(slot, None)
                if status == "elsewhere" and run_id not in waited:  # held by another process: wait for it last
                    later.append(by_id[run_id])
                else:
                    summary.counts[status] += 1
                    done += 1
                    bar.update()
                    if record is not None:
                        tqdm.write(f"[{slots[slot]}#{slot}] {summary_line(record)}")
                dispatch(slot)
    except KeyboardInterrupt:
        summary.interrupted = True
        summary.cut_off = [by_id[r].label for r in current.values()]
    finally:
        bar.close()
        _stop(procs, tasks, graceful=not summary.interrupted)
        if summary.interrupted:  # count the runs that finished before the workers stopped
            _drain(results, summary, current, by_id, ctx.out, since)
    return summary


def _stop(procs, tasks, graceful: bool) -> None:
    """Graceful: end-of-queue marks and a minute to exit. Else SIGTERM (a worker checkpoints and stops)."""
    for proc, q in zip(procs, tasks):
        if proc.is_alive():
            if graceful:
                q.put(None)
            else:
                proc.terminate()
    for proc in procs:
        proc.join(timeout=60 if graceful else 10)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _drain(results, summary, current: dict, by_id: dict, out, since: float) -> None:
    """After an interrupt: the runs whose 'done' message arrived late still count, and are not cut off; so does a
    run whose worker wrote its file and was stopped before it could say so (the file is the truth)."""
    counted = set()

    def count(run_id: str, status: str) -> None:
        counted.add(run_id)
        if status != "elsewhere":
            summary.counts[status] += 1
        label = by_id[run_id].label
        if label in summary.cut_off:
            summary.cut_off.remove(label)

    while True:
        try:
            kind, slot, payload = results.get(timeout=0.1)
        except (queue.Empty, OSError, ValueError):
            break
        if kind == "start":  # a run begun after the driver stopped reading
            current[slot] = payload
        elif kind == "done":
            count(payload[0], payload[1])
    for run_id in set(current.values()) - counted:  # in progress at the interrupt: finished after all?
        if store.written_since(out, run_id, since):
            count(run_id, store.status_of(out, run_id) or "failed")
