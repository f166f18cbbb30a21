"""Shared test helpers. Tests run from the repo root (pyproject's testpaths)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def run_cli(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python run_all.py ARGS` in a subprocess, as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "run_all.py"), *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def sigint_as_ctrl_c() -> None:
    """preexec_fn for a subprocess that a test interrupts with SIGINT. A shell that starts a job in the
    background (`cmd &`, some CI runners) hands it SIGINT ignored, and Python then installs no Ctrl-C
    handler: the child would run to the end instead of stopping."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# Test tensors are tiny: one thread avoids OpenMP overhead that dominates on a shared 2-core machine.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
