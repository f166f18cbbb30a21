"""Tables and plots from the stored runs, never from memory: `python run_all.py report` rebuilds them.

A cell holds one configuration: runs are grouped by their whole configuration except the seed.
Runs of a method on a dataset that differ in a setting are separate rows, labelled by what
differs from the configuration most of them share (e.g. `conv [lr=0.01]`); smoke runs and
shortened runs (--budget) are marked too. Per cell: mean, 95 % confidence interval and n over
seeds (bench/report/stats.py); per dataset, the best mean in bold (equal means share it) and every row
that no other row is significantly above marked ≈ (paired t-tests over seeds, and over test examples
where the run files hold them, Holm over every pair of the comparison family); a mean rank over the
datasets every ranked row has, with a stratified-bootstrap interval, and the probability of improving
on the baseline `conv`. The MNIST-1D paper's reference models are reported but not in the family
unless asked (`include_reference`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

import datasets
from bench.report import stats
from bench.report.tables import METRIC_SHORT, fmt_params, higher_is_better
from bench.report.trials import trial_label
from bench.run.suite import variant_of

MARKS = {"smoke": "smoke", "budget": "budget", "matched-params": "params-matched", "matched-flops": "flops-matched"}
SETTING_SECTIONS = ("model", "data", "train", "crossres")
COST_FIELDS = ["params_weights", "flops_fwdbwd", "throughput", "aggregate_throughput", "epoch_time_s", "peak_mem_mb",
               "device"]  # fmt: skip
REFERENCE_METHODS = ("logreg", "mlp", "gru", "cnn1d_mnist1d")  # the MNIST-1D paper's models: anchors, not contenders
BASELINE = "conv"  # the fixed-size baseline the paired differences and P(improvement) are taken against


def cost_fields(r: dict) -> dict:
    """Cost columns of a run (bench/run/measure.py); peak memory is the GPU's on CUDA, else what the run added to RSS."""
    gpu = (r.get("env") or {}).get("gpu_name")
    peak = r.get("peak_gpu_mem_mb") if r.get("peak_gpu_mem_mb") is not None else r.get("run_cpu_mem_mb")
    return {"params_weights": r.get("params_weights"), "flops_fwdbwd": r.get("flops_fwdbwd"),
            "throughput": r.get("throughput_train_samples_s"), "epoch_time_s": r.get("epoch_time_s"),
            "peak_mem_mb": peak, "device": gpu or "cpu",
            # the GPU's samples/s with --runs-per-gpu N: N such runs trained on it at once
            "aggregate_throughput": None if (speed := r.get("throughput_train_samples_s")) is None
                                    else speed * ((r.get("launcher") or {}).get("runs_per_gpu") or 1)}  # fmt: skip


def settings_of(config: dict) -> dict[str, str]:
    """A run's settings as flat `section.key` -> JSON text: everything that defines it except the seed."""
    flat = {f"{section}.{k}": v for section in SETTING_SECTIONS for k, v in (config.get(section) or {}).items()}
    flat["budget"] = config.get("budget", 1.0)
    return {k: json.dumps(v, sort_keys=True, default=str) for k, v in flat.items()}


def number(value) -> float | None:
    """A metric as a float, or None for anything that is not a finite-or-inf number (a damaged file)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def classes_of(dataset: str) -> int | None:
    """The dataset card's class count, for run files written before records held their task."""
    try:
        return datasets.get_entry(dataset).card.classes
    except Exception:  # a plugin dataset this report was not given
        return None


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run: identity, status, metrics, size, cost, and its settings (for grouping)."""
    rows = []
    for r in records:
        m = r.get("metric", "accuracy")
        marks = [MARKS[t] for t in r.get("tags", []) if t in MARKS]
        rows.append({
            # a suite's data variant (drop rate, sampling rate) is a column of its own, named by its label
            "run_id": r["run_id"], "method": r["method"], "dataset": variant_of(r.get("tags", [])) or r["dataset"],
            "seed": r["seed"],
            "status": r["status"], "error": r.get("error"), "metric": m, "marks": "+".join(marks),
            "trial": trial_label(r),
            "settings": json.dumps(settings_of(r.get("config") or {}), sort_keys=True),
            "train": number(r.get(f"train_{m}")), "val": number(r.get(f"val_{m}")),
            "test": number(r.get(f"test_{m}")), "test_correct": r.get("test_correct"), "test_n": r.get("test_n"),
            "params": r.get("params"), "wall_time_s": r.get("wall_time_s"),
            "train_time_s": r.get("train_time_s"), "flops_fwd": r.get("flops_fwd"),
            "epochs_run": r.get("epochs_run"), "epochs_cap": r.get("epochs_cap"),
            "num_classes": (r.get("task") or {}).get("num_classes") or classes_of(r["dataset"]), **cost_fields(r),
        })  # fmt: skip
    columns = ["run_id", "method", "dataset", "seed", "status", "error", "metric", "marks", "trial", "settings", "train", "val",
               "test", "test_correct", "test_n", "params", "wall_time_s", "train_time_s", "flops_fwd", "epochs_run", "epochs_cap", "num_classes",
               *COST_FIELDS]  # fmt: skip
    df = pd.DataFrame(rows, columns=columns)
    df["variant"] = variant_labels(df)
    return df


def _short(key: str, keys: list[str]) -> str:
    """`train.lr` -> `lr`, unless another differing key has the same name in another section."""
    name = key.split(".", 1)[-1]
    return name if sum(k.split(".", 1)[-1] == name for k in keys) == 1 else key


def variant_labels(df: pd.DataFrame) -> list[str]:
    """Per run: its marks and the settings in which its configuration differs from the usual one of its
    (method, dataset, marks) group: the configuration most runs there have, among equals the centre one."""
    labels = [""] * len(df)
    if df.empty:
        return labels
    for _, group in df[df["trial"] == ""].groupby(["method", "dataset", "marks"], sort=False):
        counts = group["settings"].value_counts()
        configs = {text: json.loads(text) for text in counts.index}

        def distance(a: dict, b: dict) -> int:
            return sum(a.get(k) != b.get(k) for k in set(a) | set(b))

        # the configuration most runs share; among equals, the one closest to all others (the centre)
        base = configs[max(counts.index, key=lambda t: (counts[t], -sum(distance(configs[t], c) for c in
                                                                         configs.values()), t))]  # fmt: skip
        for i, text in zip(group.index, group["settings"]):
            own = json.loads(text)
            keys = sorted(k for k in set(base) | set(own) if base.get(k) != own.get(k))
            diffs = [f"{_short(k, keys)}={json.loads(own[k]) if k in own else '(default)'}" for k in keys]
            labels[df.index.get_loc(i)] = ", ".join(filter(None, [group["marks"].iloc[0], *diffs]))
    for i, (marks, trial) in enumerate(zip(df["marks"], df["trial"])):
        if trial:  # a trial of a search is labelled by its searched values
            labels[i] = ", ".join(filter(None, [marks, f"trial {trial}"]))
    return labels


COST_AGG = {"params_weights": ("params_weights", "median"), "flops_fwd": ("flops_fwd", "median"),
            "flops_fwdbwd": ("flops_fwdbwd", "median"), "throughput": ("throughput", "mean"),
            "aggregate_throughput": ("aggregate_throughput", "mean"), "epoch_time_s": ("epoch_time_s", "mean"), "peak_mem_mb": ("peak_mem_mb", "max"),
            "device": ("device", "first")}  # fmt: skip
KEYS = ["method", "variant", "dataset", "metric"]
IN_MEMORY = ["values", "by_seed", "correct"]  # per-seed columns of the aggregate that no CSV holds


def aggregate(df: pd.DataFrame, include_reference: bool = False) -> pd.DataFrame:
    """Per (method, variant, dataset): mean, 95 % CI half-width, std, n of the test metric, the seeds' values
    (`values`, and `by_seed`: {seed: value}; `correct`: {seed: per-example bool vector} where the runs hold it),
    and the row's mark in its dataset (best / tied / worse / untested / reference)."""
    ok = df[(df["status"] == "ok") & df["test"].notna()]
    extra = ["mean", "ci", "std", "n", "values", "by_seed", "correct", "val_mean", "params", "train_time_s",
             "epochs_run", "at_cap", "num_classes", "mark"]  # fmt: skip
    if ok.empty:
        return pd.DataFrame(columns=[*KEYS, *extra, *COST_AGG])
    g = ok.groupby(KEYS, dropna=False)
    agg = g.agg(std=("test", "std"), n=("test", "size"), val_mean=("val", "mean"), params=("params", "median"),
                train_time_s=("train_time_s", "mean"), epochs_run=("epochs_run", "mean"),
                num_classes=("num_classes", "first"), **COST_AGG).reset_index()  # fmt: skip
    values = g["test"].apply(list).reset_index(drop=True)
    at_cap = g.apply(lambda d: int((d["epochs_run"] >= d["epochs_cap"]).sum()), include_groups=False)
    agg["values"] = values
    agg["by_seed"] = g.apply(lambda d: dict(zip(d["seed"], d["test"])), include_groups=False).reset_index(drop=True)
    agg["correct"] = g.apply(_correct_by_seed, include_groups=False).reset_index(drop=True)
    agg["at_cap"] = at_cap.reset_index(drop=True)
    agg["mean"], agg["ci"] = zip(*(stats.mean_ci(v)[:2] for v in values))
    agg["mark"] = ""
    for _, (marks, _tests) in column_tests(agg, include_reference).items():
        for i, mark in marks.items():
            agg.at[i, "mark"] = mark
    return agg[[*KEYS, *extra, *COST_AGG]]


def _correct_by_seed(d: pd.DataFrame) -> dict:
    """{seed: bool vector} of the runs that stored per-example test correctness (runs before protocol 2 did not)."""
    out = {}
    for seed, text, n in zip(d["seed"], d["test_correct"], d["test_n"]):
        if isinstance(text, str) and n and not pd.isna(n):
            out[seed] = stats.decode_correct(text, int(n))
    return out


def in_family(method: str, include_reference: bool = False) -> bool:
    return include_reference or method not in REFERENCE_METHODS


def column_tests(agg: pd.DataFrame, include_reference: bool = False) -> dict:
    """{(dataset, metric): (marks {agg index: mark}, tests)}: stats.compare_paired on every column, rows named by
    their label; the comparison family leaves out the reference models unless `include_reference`."""
    out = {}
    for (dataset, metric), part in agg.groupby(["dataset", "metric"]):
        labels = {i: row_label(part.at[i, "method"], part.at[i, "variant"]) for i in part.index}
        groups = {labels[i]: part.at[i, "by_seed"] for i in part.index}
        correct = {labels[i]: part.at[i, "correct"] for i in part.index if part.at[i, "correct"]}
        family = [labels[i] for i in part.index if in_family(part.at[i, "method"], include_reference)]
        marks, tests = stats.compare_paired(groups, higher_is_better=higher_is_better(metric), family=family,
                                            correct=correct)  # fmt: skip
        out[(dataset, metric)] = ({i: marks[labels[i]] for i in part.index if labels[i] in marks}, tests)
    return out


def fmt_cell(mean: float, ci: float, n: int, metric: str) -> str:
    digits = 2 if metric == "accuracy" else 4
    spread = "" if np.isnan(ci) else f" ± {ci:.{digits}f}"
    return f"{mean:.{digits}f}{spread} ({n})"


def row_label(method: str, variant: str) -> str:
    return f"{method} [{variant}]" if isinstance(variant, str) and variant else method


def column_label(dataset: str, metric: str) -> str:
    return f"{dataset} ({METRIC_SHORT.get(metric, metric)})"


def wide_table(agg: pd.DataFrame, include_reference: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows: configurations; columns: params, datasets, P(> conv), mean rank with its interval. Returns (cells,
    marks) of the same shape. Rows: ranked family rows by rank, then the other family rows, then references."""
    if agg.empty:
        return pd.DataFrame(), pd.DataFrame()
    agg = agg.assign(row=[row_label(m, v) for m, v in zip(agg["method"], agg["variant"])],
                     col=[column_label(d, m) for d, m in zip(agg["dataset"], agg["metric"])],
                     cell=[fmt_cell(a, c, n, m) for a, c, n, m in zip(agg["mean"], agg["ci"], agg["n"], agg["metric"])])  # fmt: skip
    cells = agg.pivot(index="row", columns="col", values="cell").fillna("–").rename_axis(index="method", columns=None)
    marks = agg.pivot(index="row", columns="col", values="mark").fillna("").rename_axis(index="method", columns=None)
    lo, hi = agg.groupby("row")["params"].min(), agg.groupby("row")["params"].max()
    cells.insert(0, "params", [fmt_params(a, b) for a, b in zip(lo.reindex(cells.index), hi.reindex(cells.index))])
    marks.insert(0, "params", "")
    per_seed = {col: dict(zip(part["row"], part["by_seed"])) for col, part in agg.groupby("col")}
    higher = {col: higher_is_better(part["metric"].iloc[0]) for col, part in agg.groupby("col")}
    family = [r for r, m in zip(agg["row"], agg["method"]) if in_family(m, include_reference)]
    ranked = stats.rank_intervals({c: {r: v for r, v in rows.items() if r in family} for c, rows in per_seed.items()},
                                  higher)  # fmt: skip
    base = BASELINE if any(r == BASELINE for r in agg["row"]) else None
    if base is not None:
        cells[f"P(> {base})"] = [_p_improve(per_seed, higher, r, base) for r in cells.index]
        marks[f"P(> {base})"] = ""
    if ranked:
        n_cols = len(per_seed)
        cells[f"rank [95 % CI] ({n_cols})"] = [f"{ranked[r][0]:.1f} [{ranked[r][1]:.1f}, {ranked[r][2]:.1f}]" if r in ranked
                                               else "–" for r in cells.index]  # fmt: skip
        marks[f"rank [95 % CI] ({n_cols})"] = ""
    means = {r: float(np.mean([v for v in agg.loc[agg["row"] == r, "mean"]])) for r in cells.index}
    first = {r: 0 if r in ranked else 1 if r in family else 2 for r in cells.index}
    order = sorted(cells.index, key=lambda r: (first[r], ranked.get(r, (math.inf,))[0], -means[r], r))
    return cells.loc[order], marks.loc[order]


def _p_improve(per_seed: dict, higher: dict, row: str, base: str) -> str:
    """P(row > base) at a seed, averaged over the columns both have (rliable's probability of improvement)."""
    if row == base:
        return "–"
    ps = [
        stats.prob_improvement(col[row], col[base], higher[c])
        for c, col in per_seed.items()
        if row in col and base in col
    ]
    return f"{np.mean(ps):.2f}" if ps else "–"


CAPTION = (
    "Test metric at the checkpoint with the best validation metric: mean ± half-width of the 95 % confidence "
    "interval (Student's t) over seeds, (n) seeds. Bold: the best mean of its column (equal means share it); ≈: "
    "no row is significantly above it; no mark: some row is significantly above it, or it could not be tested "
    "(fewer than 2 seeds). The test: two-sided paired t-tests on the per-seed differences (the methods share the "
    "split, test set and data order at a seed), with the test set's sampling error added where the run files hold "
    "per-example results, Holm-corrected over every pair of rows of the column, α = 0.05. (Brackets): a reference "
    "model (MNIST-1D paper), reported but not compared. P(> conv): the share of seeds at which the row beats conv, "
    "averaged over datasets. rank [95 % CI] (d): mean rank over the d datasets, among the rows that ran on all of "
    "them, with a stratified bootstrap interval over seeds."
)


def _fmt(value, spec: str) -> str:
    return "–" if value is None or pd.isna(value) else format(value, spec)


def cost_table(agg: pd.DataFrame, tables: Path) -> list[Path]:
    """Per configuration and dataset: size, FLOPs per sample, speed and memory (tables/cost.csv and cost.md)."""
    cost = agg[["method", "variant", "dataset", "params", *COST_AGG, "train_time_s", "epochs_run"]]
    cost.to_csv(tables / "cost.csv", index=False)
    shown = pd.DataFrame({
        "method": [row_label(m, v) for m, v in zip(cost["method"], cost["variant"])], "dataset": cost["dataset"],
        "params": [_fmt(v, ",.0f") for v in cost["params"]],
        "weights only": [_fmt(v, ",.0f") for v in cost["params_weights"]],
        "MFLOPs fwd": [_fmt(v / 1e6, ".3g") if v else "–" for v in cost["flops_fwd"]],
        "MFLOPs fwd+bwd": [_fmt(v / 1e6, ".3g") if v else "–" for v in cost["flops_fwdbwd"]],
        "train samples/s": [_fmt(v, ",.0f") for v in cost["throughput"]],
        "samples/s, all runs on the GPU": [_fmt(v, ",.0f") for v in cost["aggregate_throughput"]],
        "s / epoch": [_fmt(v, ".2f") for v in cost["epoch_time_s"]],
        "epochs": [_fmt(v, ".1f") for v in cost["epochs_run"]],
        "peak MiB (run)": [_fmt(v, ",.0f") for v in cost["peak_mem_mb"]], "device": cost["device"],
    })  # fmt: skip
    note = (
        "\n\npeak MiB (run): GPU allocator peak on CUDA; on the CPU, the resident memory the run added to its "
        "process (peak RSS during the run minus RSS at its start). Means over seeds; FLOPs per sample. "
        "samples/s, all runs on the GPU: a run's samples/s times the runs that shared its GPU (--runs-per-gpu).\n"
    )
    (tables / "cost.md").write_text(shown.to_markdown(index=False, disable_numparse=True) + note)
    return [tables / "cost.csv", tables / "cost.md"]
