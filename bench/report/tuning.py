"""Tuning searches in the report: which trial each method's search selects, on validation only.

A search (`--tune`, or a suite's `tune`) makes every (method, dataset, seed) a set of trials, runs
whose configs carry the whole space in `search`. A search group is the trials of one method on
one dataset with everything else equal; the rule:

    the selected trial is the one with the best mean validation metric over its seeds (ties: the
    first in the order the values were listed), among the trials none of whose seeds failed or
    diverged (a failed seed is a failure of that setting, never a trial judged on its survivors);
    only its test metric is reported.

The best test metric over the trials is never looked at (it would be selection on test). The
report writes `tables/tuned.{md,tex,csv}` (the selected trials' test metric, with the summary's
intervals and significance marks), `tables/tuning.{md,csv}` (per method and dataset: trials, the
selected values, the spread of the validation metric over the space), and a sensitivity plot per
dataset (mean validation metric against each searched value, one line per method). The summary table of
a folder with searches holds the selected trials only; `tables/trials.md` lists every trial, labelled as
an inspection table, with nothing bolded or marked by its test metric.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import summary as report
from bench.report.style import legend, pyplot, save, slug
from bench.report.tables import marked_latex, marked_markdown, write_table
from bench.report.trials import select, selected_runs, trial_text, trials_frame


def tuning_table(chosen: pd.DataFrame) -> pd.DataFrame:
    """Per method and dataset: trials, the selected values, its validation metric, and the validation
    metric's spread (max - min of the trial means) over the space: a large spread is a fragile method."""
    rows = []
    for (method, dataset, _, space), part in chosen.groupby(["method", "dataset", "group", "space"]):
        sel = part[part["selected"]]
        best = sel.iloc[0] if len(sel) else None
        rows.append({"method": method, "dataset": dataset, "trials": len(part),
                     "searched": ", ".join(f"{k} ∈ {{{', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in vs)}}}"
                                           for k, vs in json.loads(space).items()),
                     "selected": trial_text(best["trial"]) if best is not None else "none (every trial had a failed seed)",
                     "val (selected)": round(best["val_mean"], 2) if best is not None else math.nan,
                     "val spread": round(part["val_mean"].max() - part["val_mean"].min(), 2),
                     "seeds per trial": int(part["n"].min()),
                     "trials with a failed seed": int((part["failed"] > 0).sum())})  # fmt: skip
    return pd.DataFrame(rows)


def sensitivity_plots(chosen: pd.DataFrame, plots: Path, styles: dict) -> list[Path]:
    """Per dataset and searched key: mean validation metric against the key's value, one line per method."""
    written = []
    for dataset, part in chosen.groupby("dataset"):
        keys = sorted({k for space in part["space"] for k in json.loads(space)})
        fig, axes = pyplot.subplots(1, len(keys), figsize=(4.4 * len(keys), 3.4), squeeze=False)
        handles = {}
        for ax, key in zip(axes[0], keys):
            for method, m in part.groupby("method"):
                xs = [json.loads(t)[key] for t in m["trial"]]
                order = np.argsort(xs)
                st = styles[method]
                (line,) = ax.plot(np.asarray(xs)[order], m["val_mean"].to_numpy()[order], color=st["color"],
                                  ls=st["ls"], marker=st["marker"], mfc=st["mfc"], ms=4, lw=1)  # fmt: skip
                sel = m[m["selected"]]
                ax.plot([json.loads(t)[key] for t in sel["trial"]], sel["val_mean"], "o", ms=9, mfc="none",
                        color=st["color"])  # fmt: skip
                handles.setdefault(method, line)
            if all(isinstance(v, (int, float)) and v > 0 for v in (json.loads(t)[key] for t in part["trial"])):
                ax.set_xscale("log")
            ax.set_xlabel(key)
            ax.set_ylabel("mean validation metric over seeds")
            ax.grid(alpha=0.3)
        handles["selected (circled)"] = axes[0][0].plot([], [], "o", ms=9, mfc="none", color="0.3")[0]
        fig.suptitle(f"sensitivity to the searched settings: {dataset}", fontsize=9)  # before the layout makes room
        legend(fig, handles)
        written.append(save(fig, plots / f"sensitivity_{slug(dataset)}.png"))
    return written


def build_tuning(records: list[dict], tables: Path, plots: Path, styles: dict) -> list[Path]:
    """tuned.* and tuning.* tables and the sensitivity plots, when the runs hold searches; else nothing."""
    chosen = select(trials_frame(records))
    if chosen.empty:
        return []
    written = []
    summary = tuning_table(chosen)
    summary.to_csv(tables / "tuning.csv", index=False)
    (tables / "tuning.md").write_text(summary.to_markdown(index=False) + "\n\n" + RULE + "\n")
    written += [tables / "tuning.md", tables / "tuning.csv"]
    written.append(trials_table(chosen, tables))
    df = report.runs_frame(selected_runs(records))
    df["variant"] = [""] * len(df)  # one selected configuration per method and dataset: no labels
    agg = report.aggregate(df)
    cells, marks = report.wide_table(agg)
    caption = "Tuned: " + RULE + " " + report.CAPTION
    written += write_table(tables, "tuned", marked_markdown(cells, marks) + "\n\n" + caption + "\n",
                           marked_latex(cells, marks, caption), agg.drop(columns=report.IN_MEMORY))  # fmt: skip
    return written + sensitivity_plots(chosen, plots, styles)


def trials_table(chosen: pd.DataFrame, tables: Path) -> Path:
    """tables/trials.md: every trial, for inspection only: the mean validation metric that selects, the seeds that
    failed, and the mean test metric shown plainly (nothing bolded or marked by it: it is not a result)."""
    shown = pd.DataFrame({
        "method": chosen["method"], "dataset": chosen["dataset"], "trial": [trial_text(t) for t in chosen["trial"]],
        "seeds ok": chosen["n"].astype(int), "seeds failed": chosen["failed"].astype(int),
        "val mean (selects)": chosen["val_mean"].round(2), "test mean (not a result)": chosen["test_mean"].round(2),
        "selected on validation": ["yes" if s else "" for s in chosen["selected"]],
    }).sort_values(["dataset", "method", "trial"])  # fmt: skip
    note = (
        "Every trial of the search, for inspection only. The selection is on validation (" + RULE + " A trial "
        "with a failed or diverged seed is never selected.) The test column is not a result: reading the best test "
        "value off this table would be selection on the test set; no cell here is bolded or marked."
    )
    path = tables / "trials.md"
    path.write_text("# Every trial (not a result table)\n\n" + shown.to_markdown(index=False) + "\n\n" + note + "\n")
    return path


RULE = (
    "Selection: per method and dataset, the trial with the best mean validation metric over its seeds (ties: "
    "the first value listed); the test metric is reported for that trial only, never the best test."
)
