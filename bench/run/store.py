"""The results store: one JSON file per run under <out>/runs/, written atomically.

A file is named by the run id (a hash of the run's config), so rerunning a command finds
the runs it already finished. Corrupt or truncated files are reported by name and skipped.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.base import DiskFull, is_disk_full


def runs_dir(out: str | Path) -> Path:
    return Path(out) / "runs"


def run_path(out: str | Path, run_id: str) -> Path:
    return runs_dir(out) / f"{run_id}.json"


def _clean(value: Any) -> Any:
    """JSON has no NaN or inf: store them as strings so the file stays standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data, sync: bool = True) -> None:
    """Write `data` (bytes, or a function `write(file)` whose output is gathered in memory first) into a
    uniquely named temporary file beside `path`, then rename it into place: readers never see half a
    file, concurrent writers never share a temporary name, and the file gets the user's usual
    permissions (mkstemp's are 0600). `sync`: on disk before the rename (power-loss safe; checkpoints,
    rewritten every epoch, skip it). No space left (ENOSPC, EDQUOT) is a DiskFull naming the folder
    and the file's size; the temporary file is removed and `path` keeps what it held."""
    if callable(data):
        buffer = io.BytesIO()
        data(buffer)
        data = buffer.getvalue()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            _write_all(f, data, path)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            raise DiskFull.at(path.parent, len(data), path.name) from None
        raise


def _write_all(f, data: bytes, path: Path) -> None:
    """The one place file contents reach the disk (`path`: where they are going; tests put a full disk here)."""
    f.write(data)


def write_run(out: str | Path, record: dict[str, Any]) -> Path:
    """Write a run file atomically; a failure never replaces a finished (`ok`) record."""
    path = run_path(out, record["run_id"])
    if record["status"] != "ok" and status_of(out, record["run_id"]) == "ok":
        return path
    text = json.dumps(_clean(record), indent=1, sort_keys=True, allow_nan=False)
    atomic_write(path, text.encode())
    return path


def written_since(out: str | Path, run_id: str, since: float) -> bool:
    """Whether the run's file was written after `since` (a time.time()), e.g. by another process."""
    try:
        return run_path(out, run_id).stat().st_mtime > since
    except OSError:
        return False


REQUIRED = ("run_id", "status", "config", "method", "dataset", "seed")
NON_FINITE = ("nan", "inf", "-inf")  # how _clean stores them


def read_run(path: Path) -> dict[str, Any]:
    """A run record, checked: the fields every reader needs, and numbers where metrics should be."""
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or any(k not in record for k in REQUIRED):
        raise ValueError(f"not a run record (needs {', '.join(REQUIRED)})")
    if not isinstance(record["config"], dict) or not isinstance(record["method"], str):
        raise ValueError("not a run record (config must be an object, method a name)")
    metric = record.get("metric", "accuracy")
    for key in (f"{split}_{metric}" for split in ("train", "val", "test")):
        value = record.get(key)
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)) and (
                value not in NON_FINITE):  # fmt: skip
            raise ValueError(f"{key} is {value!r}, not a number")
    return record


def status_of(out: str | Path, run_id: str) -> str | None:
    path = run_path(out, run_id)
    if not path.exists():
        return None
    try:
        return read_run(path)["status"]
    except (ValueError, OSError):
        return None  # corrupt: treat as not done, it will be rerun and overwritten


def load_runs(out: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All readable run records, and one problem line per unreadable file."""
    records, problems = [], []
    for path in sorted(runs_dir(out).glob("*.json")):
        try:
            records.append(read_run(path))
        except (ValueError, OSError) as exc:
            problems.append(f"{path}: unreadable run file, skipped ({exc})")
    return records, problems


def encode_correct(correct) -> str:
    """A bool vector (per test example: right or wrong) as base64 of numpy's packbits: 1 bit per example
    (125 bytes of text for MNIST-1D's 1,000 test signals)."""
    import base64

    import numpy as np

    return base64.b64encode(np.packbits(np.asarray(correct, dtype=bool)).tobytes()).decode("ascii")


def decode_correct(text: str, n: int):
    """The bool vector `encode_correct` wrote, of length n."""
    import base64

    import numpy as np

    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8))[:n].astype(bool)
