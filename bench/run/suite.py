"""A suite: which methods, datasets and seeds to run, and with which settings; and the suites plugins add.

A suite is data, not code: the grid (bench/run/grid.py) turns a suite plus the command-line
selection into RunConfigs. Model hparams are given per task dim ({1: ..., 2: ...}) and
per method; suite-level hparams a method does not take are dropped for that method,
while the user's own `--set model.x=...` must be accepted by every chosen method.

A dataset may run under several data-option variants (`variants`: CKConv's 30/50/70 % dropped steps, its
sampling rates), each with its own loader options, model settings and crossres settings: one run per variant,
tagged `variant:<label>`, and the label is its column in the paper tables.

The built-in suites are data: bench/run/suites.py (the CPU suites) and bench/papers/ (one file per paper),
whose catalogue (bench.papers.all_suites, get_suite) also lists the suites a plugin adds with `add_suite`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variant:
    """One variant of a dataset in a suite: a run of its own, the column `label` in the paper tables."""

    label: str  # the column ("CT 30 %"), also the run's tag "variant:<label>" (and so part of its id)
    data: dict[str, Any] = field(default_factory=dict)  # loader options, over the suite's data for the dataset
    # hparams over every other suite setting, for the methods that take them (the user's --set still wins)
    model: dict[str, Any] = field(default_factory=dict)
    crossres: dict[str, Any] = field(default_factory=dict)  # instead of the suite's crossres, when set

    @property
    def tag(self) -> str:
        return f"variant:{self.label}"


def variant_of(tags) -> str | None:
    """The label of the variant a run is (its tag `variant:<label>`), or None."""
    return next((t.split(":", 1)[1] for t in tags if t.startswith("variant:")), None)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    methods: tuple[str, ...] = ("*",)
    datasets: tuple[str, ...] = ("@embedded",)  # "@embedded": every dataset whose card says source=embedded
    seeds: tuple[int, ...] = (0,)
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides
    model_by_dim: dict[int, dict[str, Any]] = field(default_factory=dict)
    model_by_method: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_by_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)  # below model_by_method
    # {method: {dataset: hparams}}, above model_by_method: one method's own per-dataset settings (the CKCNN's
    # dropout and omega_0 per dataset beside a FlexTCN with one setting for all)
    model_by_method_dataset: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    datasets_by_method: dict[str, tuple[str, ...]] = field(default_factory=dict)  # restrict a method to these
    data: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-dataset loader options
    train_by_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)
    train_by_method: dict[str, dict[str, Any]] = field(default_factory=dict)  # e.g. a kernel net's own lr
    crossres: dict[str, Any] = field(default_factory=dict)  # cross-resolution protocol (bench/run/crossres.py)
    # {dataset: (Variant, ...)}: the dataset runs once per variant instead of once (one column each in the tables)
    variants: dict[str, tuple[Variant, ...]] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    # search spaces, per method or "*" for all ({"*": {"train.lr": (1e-3, 1e-2)}}): each run becomes its trials
    tune: dict[str, dict[str, tuple]] = field(default_factory=dict)


SUITES: dict[str, Suite] = {}  # the suites plugins add; bench/papers/ is the catalogue of all


def add_suite(suite: Suite) -> Suite:
    """A plugin's own suite (bench/run/plugins.py loads the plugin); its name must be new."""
    if suite.name in SUITES:
        raise ValueError(f"suite {suite.name!r} already exists")
    SUITES[suite.name] = suite
    return suite
