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


def _cli_env(env: dict | None = None) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}


def run_cli(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python run_all.py ARGS` in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, str(REPO / "run_all.py"), *args],
        cwd=cwd, env=_cli_env(env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def _sigint_as_ctrl_c() -> None:
    # A shell that starts a job in the background (`cmd &`, some CI runners) hands it SIGINT ignored, and
    # Python then installs no Ctrl-C handler: a child a test interrupts would run to the end instead.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(*args: str, **popen_kwargs) -> subprocess.Popen:
    """Start `python run_all.py ARGS` for a test to signal or kill; stdout and stderr merged, as text."""
    return subprocess.Popen([sys.executable, str(REPO / "run_all.py"), *args], cwd=REPO, env=_cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_sigint_as_ctrl_c, **popen_kwargs)  # fmt: skip


# Test tensors are tiny: one thread avoids OpenMP overhead that dominates on a shared 2-core machine.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
