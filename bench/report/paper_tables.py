"""Paper-style tables: each table of the FlexConv, CKConv, SMPConv and CCNN papers, laid out like it, ours beside theirs.

A table draws on the runs of one suite (tag "suite:<name>", bench/run/paper_suites.py): rows are
models, columns datasets (or, for the cross-resolution tables, source / out-of-the-box / delta /
fine-tuned per dataset). Each cell is ours as mean ± std (n seeds) beside the published number
(results/reference/*.csv) and the difference ours - paper. A run is put on a paper row when its
method and the row's hyperparameters match; runs that match no row get a row of their own.

A row is marked whenever its runs are not the paper's setting as the suite defines it: [smoke],
[budget F] (a fraction F of the epochs), and any train/data/model setting that differs from what
the suite would run now (e.g. [epochs=5]); such rows never stand unmarked beside the paper.
Written to results/tables/<table>.{md,tex,csv}.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.report.reference import Reference, load_reference


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


CROSSRES_METRICS = ("source", "ootb", "delta", "finetuned")
METRIC_NAMES = {"accuracy": "acc. (%)", "top5": "top-5 (%)", "source": "Source", "ootb": "OOTB", "delta": "Δ",
                "finetuned": "Fine-tuned", "mse": "MSE"}  # fmt: skip
LOWER_IS_BETTER = {"mse"}


def _variants(method: str, label: str, model: dict, archs: dict[str, str]) -> tuple[Row, ...]:
    return tuple(Row(f"{arch_label}{label}", method, {**model, "arch": arch}) for arch, arch_label in archs.items())


F7 = {"arch": "flexnet7", "width": 24}
F5 = {"arch": "flexnet5", "width": 22}
TCN_ARCHS = {"flextcn2": "FlexTCN-2", "flextcn4": "FlexTCN-4", "flextcn6": "FlexTCN-6"}
# FlexTCN-4's runs are the flextcn4 preset's (the model of Table 1's pMNIST and Table 2's SC-MFCC numbers)
SEQ_ROWS = (*(replace(r, suite="flextcn4") if r.label == "FlexTCN-4" else r
              for r in _variants("flexconv", "", {"width": 30}, TCN_ARCHS)),
            Row("CKCNN", "ckconv", {"arch": "ckcnn", "width": 30}),
            Row("TCN", "tcn"), Row("FlexTCN-6 with S4D", "s4d", {"arch": "flextcn6", "width": 30}))  # fmt: skip

CCNN_4_140 = {"blocks": 4, "width": 140, "kernel_hidden": 32}
CCNN_6_380 = {"blocks": 6, "width": 380, "kernel_hidden": 64}
CCNN_COLUMNS = {"smnist": "sMNIST", "pmnist": "pMNIST", "scifar10": "sCIFAR10", "sc_mfcc": "SC MFCC",
                "sc_raw": "SC raw", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "stl10": "STL-10"}  # fmt: skip

MNIST1D_COLUMNS = {"mnist1d": "MNIST-1D", "mnist1d_shuffled": "MNIST-1D (shuffled)"}
MNIST1D_ROWS = (Row("Logistic regression", "logreg"), Row("MLP", "mlp"), Row("CNN", "cnn1d_mnist1d"), Row("GRU", "gru"))

TABLES: tuple[PaperTable, ...] = (
    PaperTable("flexconv-t1", "FlexConv Table 1: sequential image classification", "flexconv-seq",
               {"smnist": "sMNIST", "pmnist": "pMNIST", "scifar10": "sCIFAR10", "npcifar10": "npCIFAR10"}, SEQ_ROWS,
               also=("flextcn4",)),
    PaperTable("flexconv-t2", "FlexConv Table 2: Speech Commands", "flexconv-sc",
               {"sc_raw": "SC raw", "sc_mfcc": "SC MFCC"}, SEQ_ROWS, also=("flextcn4",)),
    PaperTable("flexconv-t3", "FlexConv Table 3: CIFAR-10", "flexconv-cifar", {"cifar10": "CIFAR-10"}, (
        Row("FlexNet-3", "flexconv", {"arch": "flexnet3", "width": 24, "kernel_wd": 0.0}),
        Row("FlexNet-5", "flexconv", {**F5, "kernel_wd": 0.0}),
        Row("FlexNet-7", "flexconv", {**F7, "kernel_wd": 0.0}),
        Row("FlexNet-3 (wd 1e-5)", "flexconv", {"arch": "flexnet3", "width": 24, "kernel_wd": 1e-5}),
        Row("FlexNet-5 (wd 1e-5)", "flexconv", {**F5, "kernel_wd": 1e-5}),
        Row("FlexNet-7 (wd 1e-5)", "flexconv", {**F7, "kernel_wd": 1e-5}),
        Row("FlexNet-7 with Conv k=3", "conv", {**F7, "kernel_size": 3}),
        Row("FlexNet-7 with Conv k=33", "conv33", F7),
        Row("FlexNet-7 with N-Jet", "njet", {**F7, "width": 38}),
        Row("CKCNN (SIREN, no mask)", "ckconv", F7),
        Row("CKCNN-MAGNet", "ckconv_magnet", F7),
        Row("FlexNet-SIREN", "flexconv_siren", F7),
        Row("MFN-Gabor", "flexconv_gabor", F7),
        Row("MFN-Fourier", "flexconv_fourier", F7),
        Row("DCN-σ", "dcn_sigma", F7),
        Row("FlexNet-7 with DCLS", "dcls", F7),
        Row("FlexNet-7 with deformable conv", "deformable", F7),
        Row("FlexNet-7 with Shelhamer blur + conv", "srf_gauss", F7),
        Row("FlexNet-7 with RFNN (fixed Gaussian-derivative basis)", "rfnn", F7),
        Row("FlexNet-7 with DAU", "dau", F7),
        Row("FlexNet-7 with dilated conv", "dilated", F7),
        Row("FlexNet-7 with SMPConv", "smpconv", F7),
        Row("FlexNet-7 with separable FlexConv (CCNN)", "flexconv_sep", F7),
        Row("FlexNet-7 with S4D (per-axis, S4ND)", "s4d", F7),
        *(Row(f"CIFARResNet-{d}", f"resnet{d}", {"width": 16}) for d in (20, 32, 44, 56, 110)),
    )),
    PaperTable("flexconv-t4", "FlexConv Table 4: CIFAR-10, train at 16 px, test and fine-tune at 32 px",
               "flexconv-crossres", {"cifar10": "CIFAR-10"}, (
        Row("FlexNet-7 (no regularisation)", "flexconv", {**F7, "antialias": 0.0}),
        Row("FlexNet-7 (gabor)", "flexconv", {**F7, "antialias": 0.1, "antialias_mask": False}),
        Row("FlexNet-7 (gabor+mask)", "flexconv", {**F7, "antialias": 0.1, "antialias_mask": True}),
        Row("FlexNet-7 with Conv k=3", "conv", {**F7, "kernel_size": 3}),
        Row("FlexNet-7 with Conv k=33", "conv33", F7),
        Row("FlexNet-7 with N-Jet", "njet", {**F7, "width": 38}),
        Row("CIFARResNet-32", "resnet32", {"width": 16}),
        Row("CIFARResNet-44", "resnet44", {"width": 16}),
        Row("FlexNet-7 (FlexConv SIREN)", "flexconv_siren", F7),
        Row("FlexNet-7 (CKCNN SIREN)", "ckconv", F7),
    ), CROSSRES_METRICS),
    PaperTable("flexconv-t6", "FlexConv Table 6: ImageNet-32", "flexconv-other", {"imagenet32": "ImageNet-32"},
               (Row("FlexNet-5", "flexconv", F5),), ("accuracy", "top5")),
    PaperTable("flexconv-t7", "FlexConv Table 7: ImageNet-k, train at 16 px, test and fine-tune at 32 px",
               "flexconv-crossres", {"imagenet32": "ImageNet-k"}, (
        Row("FlexNet-5 (gabor)", "flexconv", {**F5, "antialias": 0.1, "antialias_mask": False}),
        Row("ResNet-32", "resnet32", {"width": 16}),
        Row("FlexNet-5 with N-Jet", "njet", {"arch": "flexnet5", "width": 32}),
    ), CROSSRES_METRICS),
    PaperTable("flexconv-t8", "FlexConv Table 8: MNIST (2D)", "flexconv-other", {"mnist": "MNIST"},
               (Row("FlexNet-7", "flexconv", F7),)),
    PaperTable("flexconv-t9", "FlexConv Table 9: STL-10", "flexconv-other", {"stl10": "STL-10"},
               (Row("FlexNet-7", "flexconv", F7), Row("ResNet-18", "resnet18"), Row("ResNet-10", "resnet10"))),
    PaperTable("ckconv-seq", "CKConv: sequential image classification and Speech Commands", "ckconv-seq",
               {"smnist": "sMNIST", "pmnist": "pMNIST", "scifar10": "sCIFAR10", "sc_mfcc": "SC MFCC",
                "sc_raw": "SC raw"},
               (Row("CKCNN (100k)", "ckconv", {"arch": "ckcnn", "width": 30, "weight_norm": True}),
                Row("CKCNN (1M)", "ckconv", {"arch": "ckcnn", "width": 100, "weight_norm": True}, suite="ckcnn-1m")),
               also=("ckcnn-1m",)),
    PaperTable("smpconv", "SMPConv (repository README): sequential and image classification", "smpconv",
               {"smnist": "sMNIST", "pmnist": "pMNIST", "scifar10": "sCIFAR10", "sc_mfcc": "SC MFCC",
                "sc_raw": "SC raw", "cifar10": "CIFAR-10"}, (Row("SMPConv", "smpconv"),)),
    *(PaperTable(key, f"CCNN Table 1, {label} (published numbers not yet verified here)", suite, CCNN_COLUMNS,
                 (Row(label, "ccnn", size),))
      for key, label, suite, size in (("ccnn-t1", "CCNN-4,140", "ccnn", CCNN_4_140),
                                      ("ccnn-t1-6380", "CCNN-6,380", "ccnn-6380", CCNN_6_380))),
    PaperTable("ccnn-pr1", "CCNN-4,140 on CIFAR-10 as in david-knigge/ccnn PR #1 (Table 1's command)", "ccnn",
               {"cifar10": "CIFAR-10"}, (Row("CCNN-4,140", "ccnn", CCNN_4_140),)),
    *(PaperTable(key, f"MNIST-1D (Greydanus & Kobak, ICML 2024): {what}", suite, MNIST1D_COLUMNS, MNIST1D_ROWS,
                 references="mnist1d", others=True)
      for key, suite, what in (
          ("mnist1d", "cpu", "the paper's models and every method under the cpu suite's protocol"),
          ("mnist1d-full", "cpu-full", "every method under the cpu suite's protocol, shuffled signals too"),
          ("mnist1d-paper", "mnist1d-paper", "the paper's models under the paper's own protocol"))),
    PaperTable("crossres-shapes", "Cross-resolution protocol on procedural shapes (offline; no published numbers)",
               "crossres-shapes", {"shapes": "shapes"}, (), CROSSRES_METRICS),
    PaperTable("crossrate-mnist1d", "Sampling-rate protocol on MNIST-1D: trained at 40 steps, tested zero-shot at 80 "
               "(offline; no published numbers)", "crossrate-mnist1d", {"mnist1d": "MNIST-1D"}, (), CROSSRES_METRICS),
)  # fmt: skip


# -- which runs, which rows ----------------------------------------------------------------------


def method_defaults(method: str) -> dict[str, Any] | None:
    """The hparams a method uses when a run does not set them, or None when the method is not loaded."""
    import methods

    try:
        entry = methods.get_method(method)
    except Exception:  # a plugin method the report was not given with --plugin
        return None
    own = {k: h.default for k, h in (methods.hparams_of(method, backbone=False) or {}).items()}
    return {**own, **entry.card.defaults}


def row_of(table: PaperTable, record: dict) -> Row | None:
    hp = {**(method_defaults(record["method"]) or {}), **record["config"].get("model", {})}
    for row in table.rows:
        if row.method == record["method"] and all(k in hp and hp[k] == v for k, v in row.model.items()):
            return row
    return None


def _differences(expected: dict, actual: dict, prefix: str, skip=()) -> list[str]:
    keys = sorted((set(expected) | set(actual)) - set(skip))
    return [f"{prefix}{k}={actual.get(k, '(default)')}" for k in keys if expected.get(k) != actual.get(k)]


def deviations(record: dict, row: Row | None, suite_name: str) -> list[str]:
    """The run's settings that differ from what the suite runs now for its method, dataset and seed."""
    from bench.base import UserError
    from bench.run.grid import build_grid
    from bench.run.suite import get_suite

    cfg = record["config"]
    try:
        grid = build_grid(get_suite(suite_name), methods_sel=[record["method"]], datasets_sel=[record["dataset"]],
                          seeds=(record["seed"],), budget=cfg.get("budget", 1.0))  # fmt: skip
    except UserError:
        return ["not checked: method or dataset not loaded"]
    if not grid.runs:
        return ["not in the suite"]
    expected = grid.runs[0].to_dict()
    searched = cfg.get("search") or {}
    cfg = {k: v for k, v in cfg.items() if k != "search"}
    if "selection" in cfg.get("train", {}):  # the protocol is its own mark ("paper protocol"), not a deviation
        cfg = {**cfg, "train": {k: v for k, v in cfg["train"].items() if k != "selection"}}
    if expected == {**expected, **cfg}:
        return []
    skip = {section: {k.split(".", 1)[1] for k in searched if k.startswith(section + ".")} for section in
            ("train", "data", "model")}  # fmt: skip
    out = _differences(expected["train"], cfg.get("train", {}), "", skip=skip["train"])
    out += _differences(expected["data"], cfg.get("data", {}), "data.", skip=skip["data"])
    out += _differences(expected["model"], cfg.get("model", {}), "", skip={*(row.model if row else ()), *skip["model"]})
    out += _differences(expected["crossres"], cfg.get("crossres", {}), "crossres.")
    return out


def marks(record: dict, row: Row | None, suite_name: str) -> list[str]:
    from bench.report.tuning import trial_label

    budget = record["config"].get("budget", 1.0)
    out = ["smoke"] if "smoke" in record.get("tags", []) else []
    out += [f"budget {budget:g}"] if budget < 1 else []
    out += [f"selected {trial_label(record)}"] if record["config"].get("search") else []
    out += [PAPER_PROTOCOL] if paper_protocol(record) else []
    return out + deviations(record, row, suite_name)


PAPER_PROTOCOL = "paper protocol"


def paper_protocol(record: dict) -> bool:
    """Run with --selection paper: all training data, the test set as the validation set (best test over epochs)."""
    return record["config"].get("train", {}).get("selection") == "paper"


def suite_of(table: PaperTable, record: dict) -> str:
    """The suite of `table` that the run came from (its tag), which says what its settings should be."""
    return next(s for s in table.suites if f"suite:{s}" in record.get("tags", []))


# -- the numbers -----------------------------------------------------------------------------------


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)
    failed: int = 0

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan

    @property
    def n(self) -> int:
        return len(self.values)


@dataclass
class Built:
    """A table's content before formatting: ordered rows, column keys, cells, params, references."""

    table: PaperTable
    rows: list[str]  # labels, marks included
    base: dict[str, str]  # row label -> the paper row it stands beside ("" for rows of our own)
    columns: list[tuple[str, str]]  # (column label, metric)
    cells: dict[tuple[str, str, str], Cell]  # (row, column label, metric) -> ours
    params: dict[str, list[int]]
    refs: dict[tuple[str, str, str], Reference]  # (row, column label, metric) -> published

    def ref(self, row: str, col: str, metric: str) -> Reference | None:
        return self.refs.get((self.base.get(row, ""), col, metric))


def value_of(record: dict, metric: str) -> float | None:
    """The run's number for `metric`; NaN when it failed (a cross-resolution error), None when not measured."""
    source = record.get("crossres", {}) if metric in CROSSRES_METRICS else record
    key = metric if metric in CROSSRES_METRICS else f"test_{metric}"
    value = source.get(key)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return math.nan if value is not None or "error" in source else None


def column_label(table: PaperTable, record: dict) -> str:
    label = table.columns[record["dataset"]]
    if table.crossres:
        cr = record["crossres"]
        label += f" {cr['source_resolution']}→{cr['target_resolution']}"
    return label


def build(table: PaperTable, records: list[dict], refs: dict) -> Built:
    tags = {f"suite:{s}" for s in table.suites}
    mine = [r for r in records if tags & set(r.get("tags", [])) and r["dataset"] in table.columns
            and r["status"] == "ok"]  # fmt: skip
    if table.crossres:
        mine = [r for r in mine if "crossres" in r]
    own_refs = {(m, d, k): ref for (t, m, d, k), ref in refs.items() if t == (table.references or table.key)}
    paper_rows = [row.label for row in table.rows] + sorted({m for m, _, _ in own_refs} - {r.label for r in table.rows})
    cells: dict[tuple[str, str, str], Cell] = defaultdict(Cell)
    params: dict[str, list[int]] = defaultdict(list)
    base = {label: label for label in paper_rows}
    extra: set[str] = set()
    columns = {(d, k) for _, d, k in own_refs}
    for rec in mine:
        row = row_of(table, rec)
        flags = marks(rec, row, row.suite if row and row.suite else suite_of(table, rec))
        label = (row.label if row else rec["method"]) + (f" [{', '.join(flags)}]" if flags else "")
        base[label] = row.label if row else ""
        if not row:
            extra.add(label)
        col = column_label(table, rec)
        for metric in table.metrics:
            columns.add((col, metric))
            value = value_of(rec, metric)
            if value is None:
                continue
            cell = cells[(label, col, metric)]
            if math.isnan(value):
                cell.failed += 1
            else:
                cell.values.append(value)
        if rec.get("params"):
            params[label].append(int(rec["params"]))
    ordered = []
    for label in paper_rows:  # each paper row, then our marked variants of it
        ordered.append(label)
        ordered += sorted(k for k, v in base.items() if v == label and k != label)
    ordered += sorted(extra)
    col_order = list(table.columns.values())
    columns_sorted = sorted(columns, key=lambda c: (next((i for i, p in enumerate(col_order) if c[0].startswith(p)), 99),
                                                    c[0], table.metrics.index(c[1]) if c[1] in table.metrics else 99))  # fmt: skip
    return Built(table, ordered, base, columns_sorted, dict(cells), dict(params), own_refs)


# -- formatting ------------------------------------------------------------------------------------


def fmt_ours(cell: Cell | None) -> str:
    if cell is None or (not cell.values and not cell.failed):
        return "–"
    if not cell.values:
        return f"failed ({cell.failed})"
    spread = "" if math.isnan(cell.std) else f" ± {cell.std:.2f}"
    return f"{cell.mean:.2f}{spread} ({cell.n})"


def fmt_paper(ref: Reference | None) -> str:
    return "–" if ref is None else ref.text + ("" if ref.verified else " †")


def fmt_params(values: list[int] | None) -> str:
    if not values:
        return "–"
    lo, hi = min(values), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def fmt_paper_params(built: Built, row: str) -> str:
    counts = [r.params for (m, _, _), r in built.refs.items() if m == built.base.get(row, "") and r.params]
    if not counts or built.base.get(row) != row:
        return "–"
    n = counts[0]
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.0f}k" if n >= 1e4 else f"{n:,}"


def best_rows(values: dict[str, float], metric: str) -> set[str]:
    finite = {k: v for k, v in values.items() if not math.isnan(v)}
    if not finite:
        return set()
    best = min(finite.values()) if metric in LOWER_IS_BETTER else max(finite.values())
    return {k for k, v in finite.items() if np.isclose(v, best)}


def frame(built: Built) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells as text, bold flags): columns (group, metric, part), part Ours / Paper / Diff (ours - paper).

    Paper and Diff appear only where some row has a published number.
    """
    published = {(col, m) for col, m in built.columns if any(built.ref(r, col, m) for r in built.rows)}
    paper_params = any(ref.params for ref in built.refs.values())
    idx = pd.MultiIndex.from_tuples(
        [("", "", "Params")] + ([("", "", "Paper params")] if paper_params else [])
        + [(col, METRIC_NAMES.get(m, m), part) for col, m in built.columns
           for part in (("Ours", "Paper", "Diff") if (col, m) in published else ("Ours",))]
    )  # fmt: skip
    text = pd.DataFrame("", index=built.rows, columns=idx)
    bold = pd.DataFrame(False, index=built.rows, columns=idx)
    for row in built.rows:
        text.loc[row, ("", "", "Params")] = fmt_params(built.params.get(row))
        if paper_params:
            text.loc[row, ("", "", "Paper params")] = fmt_paper_params(built, row)
    for col, metric in built.columns:
        name = METRIC_NAMES.get(metric, metric)
        with_paper = (col, metric) in published
        ours = {r: (built.cells[(r, col, metric)].mean if (r, col, metric) in built.cells else math.nan)
                for r in built.rows}  # fmt: skip
        paper = {r: (ref.value if (ref := built.ref(r, col, metric)) and built.base[r] == r else math.nan)
                 for r in built.rows}  # fmt: skip
        for r in built.rows:
            text.loc[r, (col, name, "Ours")] = fmt_ours(built.cells.get((r, col, metric)))
            if with_paper:
                ref = built.ref(r, col, metric)
                text.loc[r, (col, name, "Paper")] = fmt_paper(ref)
                diff = ours[r] - ref.value if ref is not None and not math.isnan(ours[r]) else math.nan
                text.loc[r, (col, name, "Diff")] = "–" if math.isnan(diff) else f"{diff:+.2f}"
        for r in best_rows(ours, metric):
            bold.loc[r, (col, name, "Ours")] = True
        for r in best_rows(paper, metric) if with_paper else ():
            bold.loc[r, (col, name, "Paper")] = True
    return text, bold


def notes(built: Built) -> list[str]:
    table = built.table
    what = "test accuracy (%)" if not table.crossres else "test accuracy (%) at the source and the target resolution"
    paper = "Paper: as published (results/reference/, with its source); Diff = ours − paper; " if built.refs else ""
    run_rows = {r for r, _, _ in built.cells}  # rows with runs of ours
    paper_rows = {r for r in run_rows if PAPER_PROTOCOL in r}
    selected = "the checkpoint with the best validation accuracy (a split carved from the training data)"
    if paper_rows and paper_rows == run_rows:
        selected = "the papers' protocol: trained on all the training data, the best test accuracy over epochs"
    elif paper_rows:
        selected += (
            "; rows marked [paper protocol]: the papers' own protocol, trained on all the training data, "
            "the best test accuracy over epochs (the dataset's own validation split where it has one)"
        )
    suites = ", ".join(f"`{s}`" for s in table.suites)
    lines = [
        f"Ours: mean ± std over seeds (n), {what}, at {selected}; {paper}best per column in bold.",
        f"Runs: suite{'s' if table.also else ''} {suites} (`python run_all.py --suite {table.suite}`"
        + "".join(f", `--suite {s}`" for s in table.also)
        + ").",
    ]
    if table.crossres:
        lines.append("Source: at the training resolution; OOTB: at the target resolution without retraining; "
                     "Δ = OOTB − source; Fine-tuned: after fine-tuning at the target resolution.")  # fmt: skip
    if any(" [" in r for r in built.rows):
        lines.append("[...]: runs that are not the paper's setting: smoke, budget F (a fraction F of the epochs), "
                     "or settings that differ from the suite's.")  # fmt: skip
    if any(not ref.verified for ref in built.refs.values()):
        lines.append("†: published number flagged as unverified by its source (see the note in results/reference/).")
    return lines


def to_markdown(built: Built, text: pd.DataFrame, bold: pd.DataFrame) -> str:
    heads = ["Model"] + [" ".join(p for p in c if p) for c in text.columns]
    lines = [f"### {built.table.title}", "", "| " + " | ".join(heads) + " |",
             "|" + "---|" + "---:|" * (len(heads) - 1)]  # fmt: skip
    for r in built.rows:
        cells = [f"**{v}**" if b else v for v, b in zip(text.loc[r], bold.loc[r])]
        lines.append("| " + " | ".join([r.replace("|", "\\|"), *cells]) + " |")
    return "\n".join(lines + [""] + [f"{n}  " for n in notes(built)]) + "\n"


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip
LATEX_UNICODE = {"±": r"$\pm$", "→": r"$\to$", "Δ": r"$\Delta$", "σ": r"$\sigma$", "†": r"$^\dagger$", "–": "--",
                 "−": "-", "×": r"$\times$", "`": ""}  # fmt: skip


def tex(text: str) -> str:
    return "".join(LATEX_UNICODE.get(ch, LATEX_SPECIALS.get(ch, ch)) for ch in str(text))


def _header_rows(columns: list[tuple[str, str, str]]) -> list[str]:
    """Grouped header lines with \\multicolumn and \\cmidrule, for column levels group > metric > part."""
    lines = []
    for level in (0, 1):
        spans, start = [], 0
        for i in range(1, len(columns) + 1):
            if i == len(columns) or columns[i][: level + 1] != columns[start][: level + 1]:
                spans.append((start, i, columns[start][level]))
                start = i
        if all(label == "" for _, _, label in spans):
            continue
        cells, rules = [""], []
        for s, e, label in spans:
            cells.append(rf"\multicolumn{{{e - s}}}{{c}}{{{tex(label)}}}" if label else " & ".join([""] * (e - s)))
            if label:
                rules.append(rf"\cmidrule(lr){{{s + 2}-{e + 1}}}")
        lines.append(" & ".join(cells) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join(["Model", *(tex(c[2]) for c in columns)]) + r" \\")
    return lines


def to_latex(built: Built, text: pd.DataFrame, bold: pd.DataFrame) -> str:
    """A booktabs table; compiles with \\usepackage{booktabs} (no other package)."""
    columns = list(text.columns)
    body = []
    for r in built.rows:
        cells = [rf"\textbf{{{tex(v)}}}" if b else tex(v) for v, b in zip(text.loc[r], bold.loc[r])]
        body.append(" & ".join([tex(r), *cells]) + r" \\")
    caption = tex(built.table.title + ". " + " ".join(notes(built)))
    return "\n".join([
        r"% generated by `python run_all.py report`; needs \usepackage{booktabs}",
        r"\begin{table}[ht]", r"\centering", r"\scriptsize", rf"\caption{{{caption}}}",
        r"\begin{tabular}{l" + "r" * len(columns) + "}", r"\toprule", *_header_rows(columns), r"\midrule", *body,
        r"\bottomrule", r"\end{tabular}", r"\end{table}", "",
    ])  # fmt: skip


def to_csv_frame(built: Built) -> pd.DataFrame:
    rows = []
    for r in built.rows:
        for col, metric in built.columns:
            cell, ref = built.cells.get((r, col, metric)), built.ref(r, col, metric)
            mean = cell.mean if cell else math.nan
            rows.append({
                "table": built.table.key, "row": r, "paper_row": built.base.get(r, ""), "column": col, "metric": metric,
                "ours_mean": mean, "ours_std": cell.std if cell else math.nan, "ours_n": cell.n if cell else 0,
                "ours_failed": cell.failed if cell else 0,
                "params": int(np.median(built.params[r])) if built.params.get(r) else None,
                "paper_value": ref.value if ref else math.nan, "paper_std": ref.std if ref else None,
                "paper_n": ref.n if ref else None, "paper_params": ref.params if ref else None,
                "paper_verified": ref.verified if ref else None, "paper_source": ref.source if ref else "",
                "diff": mean - ref.value if ref else math.nan,
            })  # fmt: skip
    return pd.DataFrame(rows)


def tuned_variant(table: PaperTable, records: list[dict]) -> PaperTable:
    """The table built from tuning selections: its own file (<key>-tuned) and a title that says so."""
    spaces = sorted({json.dumps(r["config"]["search"], sort_keys=True) for r in records})
    searched = "; ".join(", ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in json.loads(s).items())
                         for s in spaces)  # fmt: skip
    return replace(
        table,
        key=f"{table.key}-tuned",
        references=table.references or table.key,
        title=f"{table.title} — tuned: each row the trial selected on validation over {searched}",
    )


def build_paper_tables(
    records: list[dict], tables_dir: str | Path, reference_dir=None, tuned: bool = False
) -> list[Path]:
    """Write <table>.md, .tex and .csv for every paper table that has runs; returns the paths.

    `tuned`: the records are tuning selections (bench/report/tuning.py); the tables are <table>-tuned.*,
    titled as such, each row marked with its selected values."""
    tables_dir = Path(tables_dir)
    refs = load_reference(reference_dir)
    written = []
    for table in TABLES:
        if tuned:
            mine = [r for r in records if {f"suite:{s}" for s in table.suites} & set(r.get("tags", []))]
            if not mine:
                continue
            table = tuned_variant(table, mine)
        built = build(table, records, refs)
        if not built.cells:
            continue
        text, bold = frame(built)
        tables_dir.mkdir(parents=True, exist_ok=True)
        for ext, content in (("md", to_markdown(built, text, bold)), ("tex", to_latex(built, text, bold))):
            (tables_dir / f"{table.key}.{ext}").write_text(content)
            written.append(tables_dir / f"{table.key}.{ext}")
        numbers = to_csv_frame(built).astype({"params": "Int64", "paper_n": "Int64", "paper_params": "Int64"})
        numbers.to_csv(tables_dir / f"{table.key}.csv", index=False)
        written.append(tables_dir / f"{table.key}.csv")
    return written
