"""Claims: one process trains a run at a time, however many processes share one results folder.

Before a run starts, its process takes an exclusive lock on <out>/claims/<run_id>.lock and
writes its host and process id into it (for people reading the folder). The lock is the
operating system's (POSIX record lock, which NFS also honours), so it is released when the
process ends in any way, kill -9 included: a claim whose process is gone is free to take, and
the run resumes from its checkpoint. Two commands started together on one folder, or on several
machines that mount it, split the grid between them, each run done once.

After taking a claim, a process must read the run's status again: the run may have finished
between its first look and the lock (the lock file is removed after the run file is written).
On a filesystem without locks, claims are skipped with one warning and runs are not shared.
The same lock, held while waiting and kept as a file, serialises other work across processes
(`one_at_a_time`: a dataset is downloaded once, whoever asks first).
"""

from __future__ import annotations

import errno
import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no POSIX locks; one process per results folder
    fcntl = None

_warned = False


def claims_dir(out: str | Path) -> Path:
    return Path(out) / "claims"


class Claim:
    """A held claim on one run; `release()` (or leaving a `with` block) gives it up."""

    def __init__(self, path: Path, fd: int | None):
        self.path, self.fd = path, fd

    def release(self, remove: bool = True) -> None:
        if self.fd is None:  # no lock was taken (a filesystem without locks), or already released
            return
        if remove:  # before unlocking: a waiter then locks the removed file and finds the run done
            self.path.unlink(missing_ok=True)
        os.close(self.fd)  # closing releases the lock
        self.fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _unsupported(exc: OSError) -> bool:
    return exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


def claim(out: str | Path, run_id: str, wait: bool = False) -> Claim | None:
    """Take the claim on `run_id`: a Claim, or None when another live process holds it (and not `wait`)."""
    return lock(claims_dir(out) / f"{run_id}.lock", wait)


@contextmanager
def one_at_a_time(path: Path) -> Iterator[None]:
    """An exclusive lock across processes on `path` (waited for; the file stays for the next one)."""
    held = lock(path, wait=True)
    try:
        yield
    finally:
        held.release(remove=False)


def lock(path: Path, wait: bool = False) -> Claim | None:
    """An exclusive lock on the file `path` (created if needed), or None when another live process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is None:
            return Claim(path, fd)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):  # held by another process
                return None
            if not _unsupported(exc):
                raise
            _warn_once(path.parent)
            return Claim(path, None)
        try:  # the holder we waited for removes the file before unlocking: lock the file now at the path
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{platform.node()} {os.getpid()}\n".encode())
    return Claim(path, fd)


def _warn_once(folder: Path) -> None:
    global _warned
    if not _warned:
        print(f"warning: {folder} does not support file locks; runs are not shared between processes",
              file=sys.stderr)  # fmt: skip
        _warned = True


def holder(out: str | Path, run_id: str) -> str | None:
    """'host pid' of the process that claimed the run last, if its lock file is there (for messages)."""
    try:
        return (claims_dir(out) / f"{run_id}.lock").read_text().strip() or None
    except OSError:
        return None
