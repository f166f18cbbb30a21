"""Tables and plots from the stored runs, never from memory: `python run_all.py report` rebuilds them.

Aggregation is over seeds: mean, std (ddof=1) and n per method x dataset. Runs tagged
smoke or budget (< 1 of the suite's epochs) are kept apart and marked in every table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench import store

MARKS = {"smoke": "smoke", "budget": "budget"}


COST_FIELDS = ["params_weights", "flops_fwdbwd", "throughput", "epoch_time_s", "peak_mem_mb", "device"]


def cost_fields(r: dict) -> dict:
    """Cost columns of a run (bench/measure.py); peak memory is the GPU's on CUDA, else the process's RSS."""
    gpu = (r.get("env") or {}).get("gpu_name")
    peak = r.get("peak_gpu_mem_mb") if r.get("peak_gpu_mem_mb") is not None else r.get("peak_cpu_rss_mb")
    return {"params_weights": r.get("params_weights"), "flops_fwdbwd": r.get("flops_fwdbwd"),
            "throughput": r.get("throughput_train_samples_s"), "epoch_time_s": r.get("epoch_time_s"),
            "peak_mem_mb": peak, "device": gpu or "cpu"}  # fmt: skip


def runs_frame(records: list[dict]) -> pd.DataFrame:
    """One row per run: identity, status, metrics, size and cost."""
    rows = []
    for r in records:
        m = r.get("metric", "accuracy")
        marks = [MARKS[t] for t in r.get("tags", []) if t in MARKS]
        rows.append({
            "run_id": r["run_id"], "method": r["method"], "dataset": r["dataset"], "seed": r["seed"],
            "status": r["status"], "error": r.get("error"), "metric": m,
            "variant": "+".join(marks),
            "train": r.get(f"train_{m}"), "val": r.get(f"val_{m}"), "test": r.get(f"test_{m}"),
            "params": r.get("params"), "wall_time_s": r.get("wall_time_s"),
            "train_time_s": r.get("train_time_s"), "flops_fwd": r.get("flops_fwd"), **cost_fields(r),
        })  # fmt: skip
    columns = ["run_id", "method", "dataset", "seed", "status", "error", "metric", "variant", "train", "val", "test",
               "params", "wall_time_s", "train_time_s", "flops_fwd", *COST_FIELDS]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


COST_AGG = {"params_weights": ("params_weights", "median"), "flops_fwd": ("flops_fwd", "median"),
            "flops_fwdbwd": ("flops_fwdbwd", "median"), "throughput": ("throughput", "mean"),
            "epoch_time_s": ("epoch_time_s", "mean"), "peak_mem_mb": ("peak_mem_mb", "max"),
            "device": ("device", "first")}  # fmt: skip


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """mean, std (ddof=1; NaN for n=1) and n of the test metric per (method, variant, dataset)."""
    ok = df[df["status"] == "ok"]
    keys = ["method", "variant", "dataset", "metric"]
    if ok.empty:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n", "val_mean", "params", "train_time_s", *COST_AGG])
    g = ok.groupby(keys, dropna=False)
    agg = g.agg(mean=("test", "mean"), std=("test", "std"), n=("test", "size"), val_mean=("val", "mean"),
                params=("params", "median"), train_time_s=("train_time_s", "mean"), **COST_AGG)  # fmt: skip
    return agg.reset_index()


def fmt_cell(mean: float, std: float, n: int, metric: str) -> str:
    digits = 2 if metric == "accuracy" else 4
    spread = "" if np.isnan(std) else f" ± {std:.{digits}f}"
    return f"{mean:.{digits}f}{spread} ({n})"


def row_label(method: str, variant: str) -> str:
    return f"{method} [{variant}]" if variant else method


def column_label(dataset: str, metric: str) -> str:
    return f"{dataset} ({'acc %' if metric == 'accuracy' else 'MSE'})"


def wide_table(agg: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows: methods; columns: datasets. Returns (formatted cells, numeric means) of the same shape."""
    if agg.empty:
        return pd.DataFrame(), pd.DataFrame()
    agg = agg.assign(row=[row_label(m, v) for m, v in zip(agg["method"], agg["variant"])],
                     col=[column_label(d, m) for d, m in zip(agg["dataset"], agg["metric"])],
                     cell=[fmt_cell(a, s, n, m) for a, s, n, m in zip(agg["mean"], agg["std"], agg["n"], agg["metric"])])  # fmt: skip
    cells = agg.pivot(index="row", columns="col", values="cell").fillna("–").rename_axis(index="method", columns=None)
    means = agg.pivot(index="row", columns="col", values="mean").rename_axis(index="method", columns=None)
    lo, hi = agg.groupby("row")["params"].min(), agg.groupby("row")["params"].max()
    span = [("–" if pd.isna(a) else f"{int(a):,}" if a == b else f"{int(a):,}–{int(b):,}") for a, b in
            zip(lo.reindex(cells.index), hi.reindex(cells.index))]  # fmt: skip
    cells.insert(0, "params", span)
    return cells, means


def best_mask(cells: pd.DataFrame, means: pd.DataFrame) -> pd.DataFrame:
    """True where a cell holds the best mean of its column (max accuracy, min MSE); ties all bold."""
    mask = pd.DataFrame(False, index=cells.index, columns=cells.columns)
    for col in means.columns:
        values = means[col]
        if values.notna().any():
            best = values.min() if col.endswith("(MSE)") else values.max()
            mask.loc[values.index[np.isclose(values, best)], col] = True
    return mask


def to_markdown(cells: pd.DataFrame, mask: pd.DataFrame) -> str:
    shown = cells.copy()
    for col in shown.columns:
        shown[col] = [f"**{v}**" if b else v for v, b in zip(shown[col], mask[col])]
    return shown.to_markdown()


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}  # fmt: skip


def tex(text: str) -> str:
    """Escape LaTeX specials, then typeset ± and ranges."""
    text = "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))
    return text.replace("±", r"$\pm$").replace("–", "--")


def to_latex(cells: pd.DataFrame, mask: pd.DataFrame, caption: str) -> str:
    """Booktabs LaTeX with the best cell of each column in bold; compiles with \\usepackage{booktabs}."""
    shown = cells.map(tex).reset_index()
    shown["method"] = shown["method"].map(tex)
    flags = mask.reset_index(drop=True)
    styler = shown.style.apply(
        lambda col: ["textbf:--rwrap;" if col.name in flags and flags[col.name][i] else "" for i in range(len(col))]
    )
    styler = styler.hide(axis="index").format_index(tex, axis=1)
    return styler.to_latex(hrules=True, caption=tex(caption), position_float="centering",
                           column_format="l" + "r" * len(cells.columns))  # fmt: skip


def plot_summary(agg: pd.DataFrame, plots: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    datasets = sorted(agg["dataset"].unique())
    if not datasets:
        return written
    # 1. test metric per dataset: one panel per dataset, one bar per method, error bars over seeds
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.2 * len(datasets), 0.28 * agg["method"].nunique() + 1.8),
                             squeeze=False)  # fmt: skip
    for ax, ds in zip(axes[0], datasets):
        sub = agg[agg["dataset"] == ds].sort_values("mean")
        labels = [row_label(m, v) for m, v in zip(sub["method"], sub["variant"])]
        ax.barh(labels, sub["mean"], xerr=sub["std"].fillna(0), color="tab:blue", alpha=0.8)
        ax.set_title(ds)
        ax.set_xlabel("test accuracy (%)" if sub["metric"].iloc[0] == "accuracy" else "test MSE (lower is better)")
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    written.append(plots / "accuracy_per_dataset.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    # 2. test metric vs parameters, one panel per dataset
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        sub = agg[agg["dataset"] == ds]
        ax.errorbar(sub["params"], sub["mean"], yerr=sub["std"].fillna(0), fmt="o", ms=4)
        for _, r in sub.iterrows():
            ax.annotate(r["method"], (r["params"], r["mean"]), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_title(ds)
        ax.set_xlabel("trainable parameters")
        ax.set_ylabel("test accuracy (%)" if sub["metric"].iloc[0] == "accuracy" else "test MSE")
    fig.tight_layout()
    written.append(plots / "accuracy_vs_params.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)
    return written


def cost_table(agg: pd.DataFrame, tables: Path) -> list[Path]:
    """Per method and dataset: size, FLOPs per sample, speed and memory (tables/cost.csv and cost.md)."""
    cost = agg[["method", "variant", "dataset", "params", *COST_AGG, "train_time_s"]]
    cost.to_csv(tables / "cost.csv", index=False)
    labels = [row_label(m, v) for m, v in zip(cost["method"], cost["variant"])]
    shown = cost.assign(method=labels).drop(columns="variant")
    for col in ("flops_fwd", "flops_fwdbwd"):
        shown[col] = shown[col] / 1e6
    shown = shown.rename(columns={"flops_fwd": "MFLOPs fwd", "flops_fwdbwd": "MFLOPs fwd+bwd",
                                  "throughput": "train samples/s", "peak_mem_mb": "peak MiB"})  # fmt: skip
    (tables / "cost.md").write_text(shown.to_markdown(index=False, floatfmt=".4g") + "\n")
    return [tables / "cost.csv", tables / "cost.md"]


def plot_cost(agg: pd.DataFrame, plots: Path) -> list[Path]:
    """Test metric vs forward FLOPs per sample (all runs) and vs training time of the runs on a GPU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("flops_fwd", "forward FLOPs per sample", agg),
              ("train_time_s", "GPU training time (s)", agg[agg["device"] != "cpu"])]  # fmt: skip
    panels = [(col, label, sub[sub[col].notna()]) for col, label, sub in panels]
    panels = [p for p in panels if len(p[2])]
    if not panels:
        return []
    datasets = sorted(set(agg["dataset"]))
    fig, axes = plt.subplots(len(panels), len(datasets), figsize=(3.6 * len(datasets), 3.4 * len(panels)),
                             squeeze=False)  # fmt: skip
    for ax_row, (col, label, sub) in zip(axes, panels):
        for ax, ds in zip(ax_row, datasets):
            d = sub[sub["dataset"] == ds]
            ax.errorbar(d[col], d["mean"], yerr=d["std"].fillna(0), fmt="o", ms=4)
            for _, r in d.iterrows():
                ax.annotate(row_label(r["method"], r["variant"]), (r[col], r["mean"]), fontsize=6, xytext=(2, 2),
                            textcoords="offset points")  # fmt: skip
            ax.set_xscale("log")
            ax.set_title(ds)
            ax.set_xlabel(label)
            accuracy = agg[agg["dataset"] == ds]["metric"].iloc[0] == "accuracy"
            ax.set_ylabel("test accuracy (%)" if accuracy else "test MSE")
    fig.tight_layout()
    fig.savefig(plots / "accuracy_vs_cost.png", dpi=120)
    plt.close(fig)
    return [plots / "accuracy_vs_cost.png"]


def build_report(out: str | Path) -> list[str]:
    """Rebuild every table and plot under <out>/tables and <out>/plots; returns lines to print."""
    out = Path(out)
    records, problems = store.load_runs(out)
    lines = list(problems)
    if not records:
        return [*lines, f"no runs in {store.runs_dir(out)}: nothing to report"]
    df = runs_frame(records)
    tables, plots = out / "tables", out / "plots"
    tables.mkdir(parents=True, exist_ok=True)
    plots.mkdir(parents=True, exist_ok=True)
    df.drop(columns=["error"]).to_csv(tables / "runs.csv", index=False)
    agg = aggregate(df)
    agg.to_csv(tables / "summary.csv", index=False)
    cells, means = wide_table(agg)
    written = [tables / "runs.csv", tables / "summary.csv"]
    if not cells.empty:
        mask = best_mask(cells, means)
        (tables / "summary.md").write_text(to_markdown(cells, mask) + "\n")
        caption = "Test metric, mean ± std over seeds (n); best per column in bold."
        (tables / "summary.tex").write_text(to_latex(cells, mask, caption))
        written += [tables / "summary.md", tables / "summary.tex", *plot_summary(agg, plots)]
        written += cost_table(agg, tables) + plot_cost(agg, plots)
    from bench import paper_tables, report_index
    from bench import plots as more_plots

    written += paper_tables.build_paper_tables(records, tables) + more_plots.build_plots(records, agg, plots)
    failed = df[df["status"] != "ok"]
    for _, r in failed.iterrows():
        lines.append(f"{r['status']}: {r['method']} on {r['dataset']} (seed {r['seed']}): {r['error']}")
    written.append(report_index.write_index(out, len(records), written))  # last: it embeds what was written
    lines.append(f"report: {len(df)} runs ({len(df) - len(failed)} ok) -> " + ", ".join(str(p) for p in written))
    return lines
