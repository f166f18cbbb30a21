"""Tuning searches: the trials of each search group and the one selected, on validation only (tuning.py: the rule).

Also the labels of trial runs (`trial_label`, `trial_value`) that the summary and the command line use.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from bench.report.tables import higher_is_better


def trial_value(config, key: str):
    """The value a run (a RunConfig or its dict) has for a searched `section.name` key."""
    section, _, name = key.partition(".")
    part = config.get(section, {}) if isinstance(config, dict) else getattr(config, section)
    if isinstance(part, dict):
        return part.get(name)
    return getattr(part, name)


def identity(r: dict) -> dict | None:
    """A finished trial's search group, space and searched values; None for a run that is no trial."""
    space = (r.get("config") or {}).get("search")
    if not space:
        return None
    values = {k: trial_value(r["config"], k) for k in space}
    rest = {k: v for k, v in r["config"].items() if k not in ("seed", "search")}
    for key in space:  # the group is everything but the seed and the searched values
        section, _, name = key.partition(".")
        rest[section] = {k: v for k, v in rest.get(section, {}).items() if k != name}
    return {"method": r["method"], "dataset": r["dataset"], "group": json.dumps(rest, sort_keys=True, default=str),
            "space": json.dumps(space, sort_keys=True), "trial": json.dumps(values, sort_keys=True),
            "order": _order(space, values)}  # fmt: skip


def trials_frame(records: list[dict]) -> pd.DataFrame:
    """One row per finished trial run: its group, its searched values, val and test metrics."""
    rows = []
    for r in records:
        ident = identity(r)
        if ident is not None:
            m = r.get("metric", "accuracy")
            ok = r["status"] == "ok"
            rows.append({**ident, "metric": m, "seed": r["seed"], "ok": ok, "val": r.get(f"val_{m}") if ok else None,
                         "test": r.get(f"test_{m}") if ok else None})  # fmt: skip
    return pd.DataFrame(rows)


def _order(space: dict, values: dict) -> tuple:
    """The trial's place in the space as listed: ties in validation go to the first."""
    return tuple(space[k].index(values[k]) if values[k] in space[k] else math.inf for k in space)


def select(trials: pd.DataFrame) -> pd.DataFrame:
    """Per search group: every trial's mean validation metric and n, and which trial is selected."""
    if trials.empty:
        return pd.DataFrame()
    trials = trials.assign(failed=~trials["ok"].astype(bool))
    stats = (trials.groupby(["method", "dataset", "metric", "group", "space", "trial", "order"], dropna=False)
             .agg(val_mean=("val", "mean"), n=("val", "count"), failed=("failed", "sum"), test_mean=("test", "mean"))
             .reset_index())  # fmt: skip
    stats["selected"] = False
    for _, part in stats.groupby(["method", "dataset", "group", "space"]):
        higher = higher_is_better(part["metric"].iloc[0])
        eligible = part[(part["failed"] == 0) & (part["n"] > 0)]  # a failed or diverged seed rules a trial out
        if eligible.empty:
            continue
        best = eligible.sort_values("order").sort_values("val_mean", ascending=not higher, kind="stable").index[0]
        stats.loc[best, "selected"] = True
    return stats


def selected_runs(records: list[dict]) -> list[dict]:
    """The run records of the selected trials (every seed of each), for tables built from the selection."""
    chosen = select(trials_frame(records))
    if chosen.empty:
        return []
    keep = {(r.method, r.dataset, r.group, r.trial) for r in chosen[chosen["selected"]].itertuples()}
    out = []
    for rec in records:
        ident = identity(rec)
        if ident and (ident["method"], ident["dataset"], ident["group"], ident["trial"]) in keep:
            out.append(rec)
    return out


def trial_label(record: dict) -> str:
    """'lr=0.001' for a trial run, '' for any other."""
    space = (record.get("config") or {}).get("search")
    return trial_text(json.dumps({k: trial_value(record["config"], k) for k in space})) if space else ""


def trial_text(trial_json: str) -> str:
    return ", ".join(f"{k.split('.', 1)[1]}={v:g}" if isinstance(v, float) else f"{k.split('.', 1)[1]}={v}"
                     for k, v in json.loads(trial_json).items())  # fmt: skip
