"""Paper-style tables: each paper's tables (declared in bench/papers/), laid out like the paper's, ours beside theirs.

A table draws on the runs of one suite (tag "suite:<name>", declared beside it in bench/papers/): rows are
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

import methods
from bench.base import UserError
from bench.papers import CROSSRES_METRICS, PaperTable, Row, all_tables, get_suite
from bench.report.reference import Reference, load_reference
from bench.report.style import legend, method_styles, point_style, pyplot, save
from bench.report.tables import METRIC_AXIS, fmt_params, grouped_header, latex_table, markdown_table, tex, write_table
from bench.report.trials import trial_label
from bench.run.grid import build_grid
from bench.run.suite import variant_of

METRIC_NAMES = {"accuracy": "acc. (%)", "top5": "top-5 (%)", "source": "Source", "ootb": "OOTB", "delta": "Δ",
                "finetuned": "Fine-tuned", "mse": "MSE", "auc": "AUC"}  # fmt: skip
LOWER_IS_BETTER = {"mse"}
DIGITS = {"auc": 3}  # decimals of our cells where 2 would hide what the papers print (AUC 0.895); default 2


# -- which runs, which rows ----------------------------------------------------------------------


def method_defaults(method: str) -> dict[str, Any] | None:
    """The hparams a method uses when a run does not set them, or None when the method is not loaded."""
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
    cfg = record["config"]
    try:
        grid = build_grid(get_suite(suite_name), methods_sel=[record["method"]], datasets_sel=[record["dataset"]],
                          seeds=(record["seed"],), budget=cfg.get("budget", 1.0))  # fmt: skip
    except UserError:
        return ["not checked: method or dataset not loaded"]
    variant = variant_of(record.get("tags", []))
    runs = [c for c in grid.runs if variant is None or f"variant:{variant}" in c.tags]  # the record's variant
    if not runs:
        return ["not in the suite"]
    expected = runs[0].to_dict()
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


def column_of(table: PaperTable, record: dict) -> str:
    """The run's column: its variant's label (which says its rates), else the dataset's, with the cross-resolution
    pair appended."""
    variant = variant_of(record.get("tags", []))
    if variant is not None:
        return variant
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
        col = column_of(table, rec)
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
    col_order: list[str] = []  # per dataset: its variants in the suites' order, then its own name
    for dataset, name in table.columns.items():
        col_order += [v.label for s in table.suites for v in get_suite(s).variants.get(dataset, ())] + [name]
    variants = set(col_order) - set(table.columns.values())

    def rank(label: str) -> int:
        if label in variants:
            return col_order.index(label)
        return next((i for i, p in enumerate(col_order) if label.startswith(p)), 99)

    columns_sorted = sorted(columns, key=lambda c: (rank(c[0]), c[0],
                                                    table.metrics.index(c[1]) if c[1] in table.metrics else 99))  # fmt: skip
    return Built(table, ordered, base, columns_sorted, dict(cells), dict(params), own_refs)


# -- formatting ------------------------------------------------------------------------------------


def fmt_ours(cell: Cell | None, metric: str = "accuracy") -> str:
    if cell is None or (not cell.values and not cell.failed):
        return "–"
    if not cell.values:
        return f"failed ({cell.failed})"
    digits = DIGITS.get(metric, 2)
    spread = "" if math.isnan(cell.std) else f" ± {cell.std:.{digits}f}"
    return f"{cell.mean:.{digits}f}{spread} ({cell.n})"


def fmt_paper(ref: Reference | None) -> str:
    return "–" if ref is None else ref.text + ("" if ref.verified else " †")


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
        text.loc[row, ("", "", "Params")] = fmt_params(min(n), max(n)) if (n := built.params.get(row)) else "–"
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
            text.loc[r, (col, name, "Ours")] = fmt_ours(built.cells.get((r, col, metric)), metric)
            if with_paper:
                ref = built.ref(r, col, metric)
                text.loc[r, (col, name, "Paper")] = fmt_paper(ref)
                diff = ours[r] - ref.value if ref is not None and not math.isnan(ours[r]) else math.nan
                text.loc[r, (col, name, "Diff")] = "–" if math.isnan(diff) else f"{diff:+.{DIGITS.get(metric, 2)}f}"
        for r in best_rows(ours, metric):
            bold.loc[r, (col, name, "Ours")] = True
        for r in best_rows(paper, metric) if with_paper else ():
            bold.loc[r, (col, name, "Paper")] = True
    return text, bold


def notes(built: Built) -> list[str]:
    table = built.table
    metric = {"auc": "AUC"}.get(table.metrics[0], "accuracy")  # the crossres metrics are accuracies
    what = f"test {metric}" + (" (%)" if metric == "accuracy" else "")
    what += " at the source and the target resolution" if table.crossres else ""
    paper = "Paper: as published (results/reference/, with its source); Diff = ours − paper; " if built.refs else ""
    run_rows = {r for r, _, _ in built.cells}  # rows with runs of ours
    paper_rows = {r for r in run_rows if PAPER_PROTOCOL in r}
    selected = f"the checkpoint with the best validation {metric} (a split carved from the training data)"
    if paper_rows and paper_rows == run_rows:
        selected = f"the papers' protocol: trained on all the training data, the best test {metric} over epochs"
    elif paper_rows:
        selected += (
            "; rows marked [paper protocol]: the papers' own protocol, trained on all the training data, "
            f"the best test {metric} over epochs (the dataset's own validation split where it has one)"
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
    body = [[r, *(f"**{v}**" if b else v for v, b in zip(text.loc[r], bold.loc[r]))] for r in built.rows]
    lines = [f"### {built.table.title}", "", *markdown_table(heads, body), ""]
    return "\n".join(lines + [f"{n}  " for n in notes(built)]) + "\n"


def to_latex(built: Built, text: pd.DataFrame, bold: pd.DataFrame) -> str:
    body = [[tex(r), *(rf"\textbf{{{tex(v)}}}" if b else tex(v) for v, b in zip(text.loc[r], bold.loc[r]))]
            for r in built.rows]  # fmt: skip
    caption = tex(built.table.title + ". " + " ".join(notes(built)))
    return latex_table(grouped_header(list(text.columns)), body, caption, small=True)


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
    for table in all_tables():
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
        numbers = to_csv_frame(built).astype({"params": "Int64", "paper_n": "Int64", "paper_params": "Int64"})
        written += write_table(tables_dir, table.key, to_markdown(built, text, bold), to_latex(built, text, bold),
                               numbers)  # fmt: skip
    return written


def accuracy_vs_params(records: list[dict], plots: Path) -> list[Path]:
    """Per paper table: each row's mean ± std over seeds against its parameters, in the row's own colour and
    marker (legend), and its published point as a grey square joined to ours by a thin line."""
    refs, written = load_reference(), []
    for table in all_tables():
        built = build(table, records, refs)
        if not built.cells or table.crossres:
            continue
        cols, metric = list(dict.fromkeys(c for c, _ in built.columns)), table.metrics[0]
        paper = {r.label: r.method for r in table.rows}
        method_of = {row: paper.get(built.base.get(row) or "", row.split(" [")[0]) for row in built.rows}
        styles = method_styles(built.rows, method_of)  # one look per row: rows are often one method's variants
        fig, axes = pyplot.subplots(1, len(cols), figsize=(5.0 * len(cols), 4.2), squeeze=False)
        handles = {}
        for ax, col in zip(axes[0], cols):
            for row in built.rows:
                cell, params = built.cells.get((row, col, metric)), built.params.get(row)
                ref = built.ref(row, col, metric)
                ref = ref if ref and ref.params and built.base.get(row) == row else None
                if not (cell and cell.values and params):
                    continue
                x = float(np.median(params))
                handles[row] = ax.errorbar(x, cell.mean, yerr=0 if math.isnan(cell.std) else cell.std,
                                           **point_style(styles[row]), capsize=2)  # fmt: skip
                if ref:
                    ax.plot([ref.params, x], [ref.value, cell.mean], color=styles[row]["color"], lw=0.6, alpha=0.6)
                    ax.plot(ref.params, ref.value, "s", mfc="none", color="0.35", ms=5)
            ax.set_xscale("log")
            ax.set_xlabel("trainable parameters")
            ax.set_ylabel(METRIC_AXIS.get(metric, metric))
            ax.set_title(col)
            ax.grid(alpha=0.3)
        handles["published (joined to ours)"] = axes[0][0].plot([], [], "s", mfc="none", color="0.35")[0]
        legend(fig, handles)
        fig.suptitle(table.title, fontsize=9)
        written.append(save(fig, plots / f"{table.key}_accuracy_vs_params.png"))
    return written
