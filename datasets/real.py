"""Real datasets on disk: find the files, download them where the loader can, else one clear UserError.

Downloads go through the field's own loaders (torchvision, torchaudio), which verify their
checksums. Before a download we check in a few seconds that the host answers, so an offline
machine gets the explanation at once instead of a long network hang.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from bench.base import UserError

CONNECT_TIMEOUT_S = 5.0
DOWNLOAD_SOCKET_TIMEOUT_S = 60.0  # a stalled download fails instead of hanging
PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


def flag(name: str, option: str, value) -> bool:
    """A yes/no option; command-line values may arrive as strings ("false" would otherwise count as true)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise UserError(f"dataset {name!r}: option {option} must be true or false, got {value!r}")


def missing_files(folder: Path, files: list[str]) -> list[str]:
    return [f for f in files if not (folder / f).exists()]


def offline_reason(url: str) -> str | None:
    """Why `url`'s host cannot be reached, or None when it answers (or a proxy will be used)."""
    if any(os.environ.get(v) for v in PROXY_VARS):
        return None  # urllib goes through the proxy; a direct connection test would mislead
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return f"cannot reach {parsed.hostname}: {exc}"
    return None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def require_files(
    name: str,
    folder: Path,
    files: list[str],
    *,
    hint: str,
    download: bool = False,
    fetch: Callable[[], None] | None = None,
    url: str = "",
) -> None:
    """Make sure `folder/f` exists for every f in `files`: download with `fetch()` if allowed, else raise.

    `hint` tells the user what to put where; it ends every message.
    """
    download = flag(name, "download", download)
    missing = missing_files(folder, files)
    if not missing:
        return
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    where = f"dataset {name!r}: {shown} not found in {folder}"
    if not download or fetch is None:
        raise UserError(f"{where}. {hint}")
    reason = offline_reason(url) if url else None
    if reason is None:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_SOCKET_TIMEOUT_S)
        try:
            fetch()
        except Exception as exc:  # any failure of a third-party download becomes the one clear message
            reason = first_line(exc)
        finally:
            socket.setdefaulttimeout(previous)
    if reason is None and missing_files(folder, files):
        reason = f"the download did not produce {', '.join(missing_files(folder, files)[:3])}"
    if reason is not None:
        raise UserError(f"{where} and the download failed ({reason}). {hint}")


@contextmanager
def reading(name: str, path: Path, hint: str) -> Iterator[None]:
    """Turn any error while parsing a dataset file into a UserError naming the file."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        raise UserError(
            f"dataset {name!r}: cannot read {path} ({first_line(exc)}); the file is damaged or not in the "
            f"expected format. Delete it and download it again. {hint}"
        ) from exc
