"""What every layer of the project shares, and nothing else: the user-error type and the registry class.

`methods/` and `datasets/` import this module and no other part of `bench/` (it imports nothing of
the harness), so `import methods` stays cheap and self-contained.

- `UserError`: bad input (an unknown name, a wrong value, a missing file); the command line turns it
  into one line and exit status 2. `DiskFull`, a UserError: no space left where the suite writes. `Diverged`: the training loss became NaN or infinite.
- `Registry`: one class for methods, datasets and launchers. Entries are registered with a
  decorator. Built-ins are *lazy*: the registry knows their names and the module that registers
  them, and imports that module only when one of its names is asked for. Third-party packages add
  entries through a Python entry-point group.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any


class UserError(Exception):
    """Bad input from the user: an unknown name, a wrong value, a missing file."""


class DiskFull(UserError):
    """No space left (ENOSPC, or a quota: EDQUOT) where the suite writes: the grid stops, nothing is recorded
    as failed, and the same command resumes once space is freed."""

    @classmethod
    def at(cls, folder, need: int | None = None, what: str | None = None) -> DiskFull:
        """The one line for a write into `folder` of `need` bytes (`what`: the file) that found no space."""
        import shutil

        try:
            free = f"{_size(shutil.disk_usage(folder).free)} free"
        except OSError:
            free = ""
        needs = f"writing {what or 'a file'} needs {_size(need)}" if need is not None else ""
        detail = ", ".join(part for part in (needs, free) if part)
        return cls(f"no space left on the device of {folder}" + (f" ({detail})" if detail else "") +
                   "; finished runs are kept: free some space and rerun the same command to resume")  # fmt: skip


def is_disk_full(exc: BaseException) -> bool:
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class Entry:
    name: str
    obj: Callable[..., Any]
    card: Any = None  # a MethodCard, a DatasetCard, ...
    origin: str = ""  # the module that registered it


class Registry:
    def __init__(self, what: str, entry_point_group: str, builtin: dict[str, str]):
        self.what = what  # "method", "dataset", ... (used in messages)
        self.group = entry_point_group
        self._lazy = dict(builtin)  # name -> module that registers it
        self._entries: dict[str, Entry] = {}
        self._entry_points_loaded = False

    # -- registration -----------------------------------------------------------
    def register(self, name: str, card: Any = None) -> Callable:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} name must be a non-empty string, got {name!r}")

        def decorator(obj: Callable) -> Callable:
            self.add(name, obj, card)
            return obj

        return decorator

    def add(self, name: str, obj: Callable, card: Any = None) -> None:
        origin = getattr(obj, "__module__", "") or ""
        taken = self._entries.get(name)
        if taken is not None and not (taken.origin == origin and taken.obj is obj):
            raise ValueError(f"{self.what} {name!r} is already registered (by {taken.origin})")
        lazy_owner = self._lazy.get(name)
        if taken is None and lazy_owner is not None and lazy_owner != origin:
            raise ValueError(f"{self.what} {name!r} is already registered (built-in, {lazy_owner})")
        self._entries[name] = Entry(name, obj, card, origin)

    def unregister(self, name: str) -> None:
        """Remove an entry (tests and interactive use)."""
        self._entries.pop(name, None)
        self._lazy.pop(name, None)

    # -- discovery --------------------------------------------------------------
    def load_entry_points(self) -> None:
        """Import the modules that installed packages declare in our entry-point group."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self.group):
            try:
                ep.load()  # importing the module runs its register decorators
            except Exception as exc:  # a broken plugin must not take the suite down
                raise UserError(f"plugin entry point {ep.name!r} ({ep.value}) failed to load: {exc}") from exc

    def names(self) -> list[str]:
        self.load_entry_points()
        return sorted(set(self._entries) | set(self._lazy))

    def list(self, pattern: str | None = None) -> list[str]:
        names = self.names()
        if pattern is None:
            return names
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)]

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            self.load_entry_points()
        if name not in self._entries and name in self._lazy:
            importlib.import_module(self._lazy[name])
        if name not in self._entries:
            raise UserError(self.unknown_message(name))
        return self._entries[name]

    def load_all(self) -> list[Entry]:
        return [self.get(n) for n in self.names()]

    def unknown_message(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return f"unknown {self.what} {name!r}.{hint} Known: {', '.join(names)}"

    def select(self, patterns: list[str]) -> list[str]:
        """Expand a list of names or globs, keeping order and dropping repeats."""
        chosen: list[str] = []
        for pat in patterns:
            hits = self.list(pat) if any(c in pat for c in "*?[") else [pat]
            if not hits:
                raise UserError(f"no {self.what} matches {pat!r}. Known: {', '.join(self.names())}")
            for name in hits:
                if name not in self.names():
                    raise UserError(self.unknown_message(name))
                if name not in chosen:
                    chosen.append(name)
        return chosen
