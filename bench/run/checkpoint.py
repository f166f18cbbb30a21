"""Mid-run checkpoints: a run killed in epoch k resumes at epoch k, with every RNG as it was.

Written atomically at the end of each epoch under <out>/checkpoints/<run_id>.pt and removed
when the run's file is written, so only interrupted runs leave one behind.

A checkpoint holds plain data only (tensors, numbers, strings, lists, dicts) and is read with
`torch.load(weights_only=True)`: a results folder is shared, and a file someone planted there
must not run code in every process that resumes the run. numpy's and Python's RNG states are
stored as tensors and numbers and rebuilt on load. A file that loader refuses (pickled objects,
a checkpoint from code before this format) is damaged: the run starts afresh.
"""

from __future__ import annotations

import io
import pickle
import random
import re
from pathlib import Path

import numpy as np
import torch

from bench.run.store import atomic_write

# 1 (before plain data): pickled objects, numpy and Python RNG states as tuples; 2: one optimizer group per
# layer; 3: layers' groups with equal settings merged (hooks.merge_equal_groups). Older ones are refused: the run
# starts afresh, which changes no result.
FORMAT = 3


def _numpy_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}  # fmt: skip


def _set_numpy_state(s: dict) -> None:
    keys = s["keys"].numpy().astype(np.uint32)
    np.random.set_state((s["kind"], keys, int(s["pos"]), int(s["has_gauss"]), float(s["gauss"])))


def _python_state() -> dict:
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def _set_python_state(s: dict) -> None:
    random.setstate((s["version"], tuple(int(v) for v in s["internal"].tolist()), s["gauss"]))


def state_of(model, optimizer, schedule, generator: torch.Generator, loop: dict) -> dict:
    """Everything a resume needs, as plain data."""
    return {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": {
            "data": generator.get_state(),
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state(),
            "python": _python_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
        "loop": loop,
    }


def save(path: Path, model, optimizer, schedule, generator: torch.Generator, loop: dict) -> None:
    buffer = io.BytesIO()  # serialised first: the write then knows its size, and a full disk is one OSError
    torch.save(state_of(model, optimizer, schedule, generator, loop), buffer)
    atomic_write(path, buffer.getvalue(), sync=False)


class Damaged(Exception):
    """A checkpoint that cannot be restored (a torn file, one from other code, one that is not plain data)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _refused(exc: BaseException) -> str:
    """One line for a file torch.load(weights_only=True) refused: what it held, never torch's advice to load it unsafely."""
    found = re.search(r"WeightsUnpickler error: ([^\n]*)", str(exc))
    what = found.group(1).split(". Please")[0].rstrip(". ") if found else type(exc).__name__
    return f"not plain data, refused unread ({what})"


def load(path: Path, model, optimizer, schedule, generator: torch.Generator) -> dict | None:
    """Restore everything and return the loop variables; None when there is no checkpoint, Damaged when
    there is one that cannot be used (the model may then be half restored: the caller starts afresh)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        refused = isinstance(exc, pickle.UnpicklingError) and "weights_only" in str(exc).lower()
        raise Damaged(_refused(exc) if refused else f"{type(exc).__name__}: {_first_line(exc)}") from exc
    try:
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"format {state.get('format', 1) if isinstance(state, dict) else '?'}, not {FORMAT}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        rng = state["rng"]
        generator.set_state(rng["data"])
        torch.set_rng_state(rng["torch"])
        _set_numpy_state(rng["numpy"])
        _set_python_state(rng["python"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        return state["loop"]
    except Exception as exc:
        raise Damaged(f"{type(exc).__name__}: {_first_line(exc)}") from exc
