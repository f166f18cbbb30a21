"""The import structure: every import points down the layers, no circle anywhere, and every import made
inside a function says why on its line (the imports inside functions count as much as those at the top).

Run `python tests/test_layout.py` to print the arrows that break a rule."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "methods", "datasets")
# lowest first; a file may import its own layer (no circle) or any lower one, never a higher one
LAYERS = (
    ("bench/base.py", "bench/__init__.py"),
    ("methods/", "datasets/"),
    ("bench/run/",),
    ("bench/papers/",),
    ("bench/report/", "bench/cost/", "bench/launchers/"),
    ("bench/cli.py",),
    ("run_all.py",),
)
MODULE_STRING = re.compile(r"^((?:bench|methods|datasets)(?:\.\w+)+)(?::\w+)?$")


def module_files() -> dict[str, Path]:
    """{dotted module name: file} for every module of the project (tests and fixtures are no part of it)."""
    out = {"run_all": ROOT / "run_all.py"}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def layer_of(path: str) -> int:
    ranks = [(len(p), i) for i, prefixes in enumerate(LAYERS) for p in prefixes if path.startswith(p)]
    if not ranks:
        raise AssertionError(f"{path} is on no layer: add it to LAYERS in tests/test_layout.py")
    return max(ranks)[1]


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def arrows(modules: dict[str, Path]) -> list[tuple[str, str, int, bool, str, bool]]:
    """(importer, imported, line, inside a function, source line) for every import, wherever it stands, and every
    string that names a project module (e.g. "bench.cost.measure:add_cost"; inside a function: False). A string
    counts as an arrow for the layers (naming a higher module is depending on it) but not for circles: a registry
    that loads its built-in entries by name (methods/_builtin.py) is how a plugin is found, not an import."""
    found = []
    for name, path in modules.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        in_function: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                in_function |= {id(n) for n in ast.walk(node) if n is not node}
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from pkg import mod` imports the submodule when there is one
                targets = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.match(node.value):
                targets = [MODULE_STRING.match(node.value).group(1)]
            string = isinstance(node, ast.Constant)
            for target in targets:
                hit = _resolve(target, modules)
                if hit and hit != name:
                    line = lines[node.lineno - 1]
                    found.append((name, hit, node.lineno, id(node) in in_function and not string, line, string))
    return found


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def upward(modules, found) -> list[str]:
    return [f"{_rel(modules[a])}:{line} imports {_rel(modules[b])} (a higher layer)"
            for a, b, line, *_ in found if layer_of(_rel(modules[b])) > layer_of(_rel(modules[a]))]  # fmt: skip


def circles(modules, found) -> list[list[str]]:
    """Strongly connected components of more than one file (Tarjan)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for a, b, *_, string in found:
        if not string:
            graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(_rel(modules[m]) for m in comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def _says_why(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, on another import of its block, or on the line just above the block."""
    i = lineno - 1
    while i >= 0:
        text = lines[i].strip()
        if "#" in text:
            return True
        if not text.startswith(("import ", "from ")) and not text.endswith(")") and text:
            return False
        i -= 1
    return False


def unexplained_lazy(modules, found) -> list[str]:
    """Imports inside a function with no comment saying why they are not at the top of the module."""
    lines = {name: path.read_text().splitlines() for name, path in modules.items()}
    return sorted({f"{_rel(modules[a])}:{line}: {text.strip()}" for a, _, line, inside, text, _ in found
                   if inside and not _says_why(lines[a], line)})  # fmt: skip


def test_every_import_points_down():
    modules = module_files()
    assert upward(modules, arrows(modules)) == []


def test_no_import_circle():
    modules = module_files()
    assert circles(modules, arrows(modules)) == []


def test_every_import_inside_a_function_says_why():
    modules = module_files()
    assert unexplained_lazy(modules, arrows(modules)) == []


def test_the_walk_sees_imports_inside_functions_and_module_strings(tmp_path, monkeypatch):
    # a tree of three files: a low file importing a high one inside a function, and naming it as a string
    for rel, text in {
        "bench/base.py": "def f():\n    from bench.cli import main\n    return 'bench.cli:main'\n",
        "bench/cli.py": "import bench.base\n",
        "bench/__init__.py": "",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "run_all.py").write_text("")
    for pkg in ("methods", "datasets"):
        (tmp_path / pkg).mkdir()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    modules = module_files()
    found = arrows(modules)
    assert len(upward(modules, found)) == 2  # the import and the string
    assert circles(modules, found) == [["bench/base.py", "bench/cli.py"]]  # the import alone makes the circle
    assert unexplained_lazy(modules, found) == ["bench/base.py:2: from bench.cli import main"]


if __name__ == "__main__":
    mods = module_files()
    arr = arrows(mods)
    for what, items in (("upward", upward(mods, arr)), ("circles", circles(mods, arr)),
                        ("unexplained imports inside functions", unexplained_lazy(mods, arr))):  # fmt: skip
        print(f"{what}: {len(items)}")
        for item in items:
            print(f"  {item}")
