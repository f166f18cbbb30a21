"""Load user plugins: `--plugin path/to/file.py` or `--plugin package.module`.

A plugin registers methods or datasets when it is imported (with `@register_method` /
`@register_dataset`); installed packages do the same through entry points, with no flag.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from bench.base import UserError


def load_plugin(spec: str) -> None:
    looks_like_file = spec.endswith(".py") or "/" in spec or "\\" in spec
    try:
        if looks_like_file:
            path = Path(spec)
            if not path.is_file():
                raise UserError(f"--plugin {spec}: no such file")
            name = f"lksbench_plugin_{path.stem}_{abs(hash(str(path.resolve()))) % 10**8}"
            if name in sys.modules:
                return
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        else:
            importlib.import_module(spec)
    except UserError:
        raise
    except ModuleNotFoundError as exc:
        raise UserError(f"--plugin {spec}: cannot import it ({exc})") from exc
    except SystemExit as exc:  # a plugin that calls sys.exit() at import must not end the suite silently
        raise UserError(f"--plugin {spec}: exited while being imported (SystemExit: {exc.code})") from exc
    except Exception as exc:
        raise UserError(f"--plugin {spec}: failed to import: {type(exc).__name__}: {exc}") from exc
