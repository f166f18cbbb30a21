"""The catalogue of every suite and paper table, and what a paper table is (`PaperTable`, `Row`).

Each paper is one module of this package (e.g. flexconv.py): its suites (SUITES), its tables (TABLES) and
its published numbers (results/reference/<module>.csv). Adding a paper is adding a file: the modules are
found here and imported the first time they are asked for. bench/report/paper_tables.py builds the tables.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from bench.base import UserError
from bench.run import suite as plugin_suites
from bench.run import suites as cpu_suites
from bench.run.suite import Suite

CROSSRES_METRICS = ("source", "ootb", "delta", "finetuned")


@dataclass(frozen=True)
class Row:
    label: str  # the paper's row name, also the reference CSV's `model`
    method: str
    model: dict[str, Any] = field(default_factory=dict)  # hparams a run must have (absent: the method's default)
    # the suite (a named preset) whose settings this row's runs must have, whichever suite ran them: a 1M CKCNN
    # made with `--set model.width=100` is marked wherever it differs from the ckcnn-1m preset
    suite: str = ""


@dataclass(frozen=True)
class PaperTable:
    key: str  # file name, and the reference CSV's `table`
    title: str
    suite: str
    columns: dict[str, str]  # our dataset -> the paper's column name (the reference CSV's `dataset`)
    rows: tuple[Row, ...] = ()
    metrics: tuple[str, ...] = ("accuracy",)
    references: str = ""  # the reference CSV's `table` whose numbers it shows (default: its own key)
    others: bool = False  # the suite runs methods beyond the rows on purpose: each is a row of its own
    also: tuple[str, ...] = ()  # other suites whose runs stand in this table (named presets: the 1M CKCNN)

    @property
    def suites(self) -> tuple[str, ...]:
        return (self.suite, *self.also)

    @property
    def crossres(self) -> bool:
        return self.metrics == CROSSRES_METRICS


def papers() -> list[ModuleType]:
    """Every module of this package, in name order; a paper declares SUITES and/or TABLES."""
    return [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]


def all_suites() -> dict[str, Suite]:
    """Every suite by name: the CPU suites, then each paper's, then any a plugin added (bench.run.suite.add_suite)."""
    out: dict[str, Suite] = {}
    for suite in (*cpu_suites.SUITES, *(s for p in papers() for s in getattr(p, "SUITES", ())),
                  *plugin_suites.SUITES.values()):  # fmt: skip
        if suite.name in out:
            raise ValueError(f"suite {suite.name!r} already exists")
        out[suite.name] = suite
    return out


def get_suite(name: str) -> Suite:
    suites = all_suites()
    if name not in suites:
        close = difflib.get_close_matches(name, suites, n=2)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UserError(f"unknown suite {name!r}.{hint} Known: {', '.join(suites)}")
    return suites[name]


def all_tables() -> list[PaperTable]:
    """Every paper table, each paper's in the order it declares them."""
    return [t for p in papers() for t in getattr(p, "TABLES", ())]
