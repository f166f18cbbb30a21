"""Mid-run checkpoints: a run killed in epoch k resumes at epoch k, with every RNG as it was.

Written atomically at the end of each epoch under <out>/checkpoints/<run_id>.pt and removed
when the run's file is written, so only interrupted runs leave one behind.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch


def save(path: Path, model, optimizer, schedule, generator: torch.Generator, loop: dict) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": {
            "data": generator.get_state(),
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },  # fmt: skip
        "loop": loop,
    }
    from bench.run.store import atomic_write

    atomic_write(path, lambda f: torch.save(state, f), sync=False)


class Damaged(Exception):
    """A checkpoint that cannot be restored (a torn file, or one from other code)."""


def load(path: Path, model, optimizer, schedule, generator: torch.Generator) -> dict | None:
    """Restore everything and return the loop variables; None when there is no checkpoint, Damaged when
    there is one that cannot be used (the model may then be half restored: the caller starts afresh)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
    except Exception as exc:
        raise Damaged(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    rng = state["rng"]
    generator.set_state(rng["data"])
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return state["loop"]
