"""Tables and plots from the stored runs, never from memory: `python run_all.py report` rebuilds them.

A cell holds one configuration: runs are grouped by their whole configuration except the seed.
Runs of a method on a dataset that differ in a setting are separate rows, labelled by what
differs from the configuration most of them share (e.g. `conv [lr=0.01]`); smoke runs and
shortened runs (--budget) are marked too. Per cell: mean, 95 % confidence interval and n over
seeds (bench/report/stats.py); per dataset, the best row in bold and every row not significantly worse
marked ≈; an average-rank column over datasets.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import stats
from bench.report.tuning import trial_label

MARKS = {"smoke": "smoke", "budget": "budget"}
SETTING_SECTIONS = ("model", "data", "train", "crossres")
COST_FIELDS = ["params_weights", "flops_fwdbwd", "throughput", "aggregate_throughput", "epoch_time_s", "peak_mem_mb",
               "device"]  # fmt: skip
TIE = "≈"  # not significantly worse than the best of its column


def cost_fields(r: dict) -> dict:
    """Cost columns of a run (bench/cost/measure.py); peak memory is the GPU's on CUDA, else what the run added to RSS."""
    gpu = (r.get("env") or {}).get("gpu_name")
    peak = r.get("peak_gpu_mem_mb") if r.get("peak_gpu_mem_mb") is not None else r.get("run_cpu_mem_mb")
    return {"params_weights": r.get("params_weights"), "flops_fwdbwd": r.get("flops_fwdbwd"),
            "throughput": r.get("throughput_train_samples_s"), "epoch_time_s": r.get("epoch_time_s"),
            "peak_mem_mb": peak, "device": gpu or "cpu",
            # the GPU's samples/s with --runs-per-gpu N: N such runs trained on it at once
            "aggregate_throughput": _times(r.get("throughput_train_samples_s"),
                                           (r.get("launcher") or {}).get("runs_per_gpu") or 1)}  # fmt: skip


def _times(value, n: int):
    return None if value is None else value * n


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
    import datasets

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
            "run_id": r["run_id"], "method": r["method"], "dataset": r["dataset"], "seed": r["seed"],
            "status": r["status"], "error": r.get("error"), "metric": m, "marks": "+".join(marks),
            "trial": trial_label(r),
            "settings": json.dumps(settings_of(r.get("config") or {}), sort_keys=True),
            "train": number(r.get(f"train_{m}")), "val": number(r.get(f"val_{m}")),
            "test": number(r.get(f"test_{m}")), "params": r.get("params"), "wall_time_s": r.get("wall_time_s"),
            "train_time_s": r.get("train_time_s"), "flops_fwd": r.get("flops_fwd"),
            "epochs_run": r.get("epochs_run"), "epochs_cap": r.get("epochs_cap"),
            "num_classes": (r.get("task") or {}).get("num_classes") or classes_of(r["dataset"]), **cost_fields(r),
        })  # fmt: skip
    columns = ["run_id", "method", "dataset", "seed", "status", "error", "metric", "marks", "trial", "settings", "train", "val",
               "test", "params", "wall_time_s", "train_time_s", "flops_fwd", "epochs_run", "epochs_cap", "num_classes",
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


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Per (method, variant, dataset): mean, 95 % CI half-width, std, n of the test metric, the seeds' values,
    and the row's significance mark in its dataset (best / tied / worse / untested)."""
    ok = df[(df["status"] == "ok") & df["test"].notna()]
    extra = ["mean", "ci", "std", "n", "values", "val_mean", "params", "train_time_s", "epochs_run", "at_cap",
             "num_classes", "mark"]  # fmt: skip
    if ok.empty:
        return pd.DataFrame(columns=[*KEYS, *extra, *COST_AGG])
    g = ok.groupby(KEYS, dropna=False)
    agg = g.agg(std=("test", "std"), n=("test", "size"), val_mean=("val", "mean"), params=("params", "median"),
                train_time_s=("train_time_s", "mean"), epochs_run=("epochs_run", "mean"),
                num_classes=("num_classes", "first"), **COST_AGG).reset_index()  # fmt: skip
    values = g["test"].apply(list).reset_index(drop=True)
    at_cap = g.apply(lambda d: int((d["epochs_run"] >= d["epochs_cap"]).sum()), include_groups=False)
    agg["values"] = values
    agg["at_cap"] = at_cap.reset_index(drop=True)
    agg["mean"], agg["ci"] = zip(*(stats.mean_ci(v)[:2] for v in values))
    agg["mark"] = ""
    for (_, metric), part in agg.groupby(["dataset", "metric"]):
        groups = {i: part.at[i, "values"] for i in part.index}
        for i, mark in stats.compare_to_best(groups, higher_is_better=metric != "mse").items():
            agg.at[i, "mark"] = mark
    return agg[[*KEYS, *extra, *COST_AGG]]


def fmt_cell(mean: float, ci: float, n: int, metric: str) -> str:
    digits = 2 if metric == "accuracy" else 4
    spread = "" if np.isnan(ci) else f" ± {ci:.{digits}f}"
    return f"{mean:.{digits}f}{spread} ({n})"


def row_label(method: str, variant: str) -> str:
    return f"{method} [{variant}]" if isinstance(variant, str) and variant else method


def column_label(dataset: str, metric: str) -> str:
    return f"{dataset} ({'acc %' if metric == 'accuracy' else 'MSE'})"


def fmt_params(lo, hi) -> str:
    if pd.isna(lo):
        return "–"
    return f"{int(lo):,}" if lo == hi else f"{int(lo):,}–{int(hi):,}"


def wide_table(agg: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows: configurations; columns: params, datasets, average rank. Returns (cells, marks) of the same shape."""
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
    means = {col: dict(zip(part["row"], part["mean"])) for col, part in agg.groupby("col")}
    higher = {col: part["metric"].iloc[0] != "mse" for col, part in agg.groupby("col")}
    if len(means) > 1:
        avg = stats.average_ranks(means, higher)
        cells["avg rank"] = [f"{avg[r][0]:.1f} ({avg[r][1]})" if r in avg else "–" for r in cells.index]
        marks["avg rank"] = ""
        order = sorted(cells.index, key=lambda r: (avg.get(r, (math.inf,))[0], r))
        cells, marks = cells.loc[order], marks.loc[order]
    return cells, marks


def _shown(value: str, mark: str, bold) -> str:
    if mark == "best":
        return bold(value)
    return f"{value} {TIE}" if mark == "tied" else value


def to_markdown(cells: pd.DataFrame, marks: pd.DataFrame) -> str:
    shown = cells.copy()
    for col in shown.columns:
        shown[col] = [_shown(v, m, lambda t: f"**{t}**") for v, m in zip(shown[col], marks[col])]
    return shown.to_markdown()


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip


def tex(text: str) -> str:
    """Escape LaTeX specials, then typeset ±, ≈ and ranges."""
    text = "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))
    return text.replace("±", r"$\pm$").replace(TIE, r"$\approx$").replace("–", "--")


def to_latex(cells: pd.DataFrame, marks: pd.DataFrame, caption: str) -> str:
    """Booktabs LaTeX, best cell of each column in bold, ties marked; compiles with \\usepackage{booktabs}."""
    body = []
    for row in cells.index:
        shown = [_shown(tex(v), m, lambda t: rf"\textbf{{{t}}}") for v, m in zip(cells.loc[row], marks.loc[row])]
        body.append(" & ".join([tex(row), *shown]) + r" \\")
    header = " & ".join(["method", *(tex(c) for c in cells.columns)]) + r" \\"
    return "\n".join([
        r"% generated by `python run_all.py report`; needs \usepackage{booktabs}", r"\begin{table}[ht]", r"\centering",
        rf"\caption{{{tex(caption)}}}", r"\begin{tabular}{l" + "r" * len(cells.columns) + "}", r"\toprule", header,
        r"\midrule", *body, r"\bottomrule", r"\end{tabular}", r"\end{table}", "",
    ])  # fmt: skip


CAPTION = (
    "Test metric at the checkpoint with the best validation metric: mean ± half-width of the 95 % confidence "
    "interval (Student's t) over seeds, (n) seeds. Bold: the best mean of its column; ≈: not significantly "
    "worse than it (one-sided Welch t-test, Holm-corrected over the rows of the column, α = 0.05); no mark: "
    "significantly worse, or fewer than 2 seeds. avg rank: mean rank over the datasets a row ran on (count)."
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
