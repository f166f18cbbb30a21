"""The report's plots, from the stored runs only (<out>/plots/*.png).

One look per method in every plot, and one legend per figure (bench/report/style.py):

- the test metric per dataset: every seed as a dot, the mean with its 95 % interval, chance;
- test metric vs parameters, vs forward FLOPs and vs training time per dataset;
- accuracy vs parameters per paper table, our rows beside the published points (paper_tables.py, passed in);
- learned kernel size per layer over training, for every method that learns its size;
- the learned continuous kernels and masks (bench/run/kernels.py snapshots) as images;
- the cross-resolution drop per method (source, out of the box, fine-tuned);
- training curves (training loss, validation metric) per dataset.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.report import stats
from bench.report.style import learns_size, legend, method_styles, point_style, pyplot, save, slug
from bench.report.summary import REFERENCE_METHODS, row_label
from bench.report.tables import METRIC_AXIS, METRIC_DIFF, higher_is_better
from bench.run.kernels import decode


def _metric_label(metric: str) -> str:
    return METRIC_AXIS.get(metric, f"test {metric}")


def _chance(part) -> float | None:
    classes = part["num_classes"].dropna()
    return 100.0 / float(classes.iloc[0]) if len(classes) and part["metric"].iloc[0] == "accuracy" else None


def _chance_or_note(ax, part, vertical: bool) -> None:
    """Chance as a line when it lies near the data; when every row is far above it, the axis zooms on the data
    and says where chance is (so noise at chance never looks like a ranking, and close results stay readable)."""
    chance = _chance(part)
    values = [v for vs in part["values"] for v in vs]
    lo, hi = min(values), max(values)
    if chance is None:
        return
    line = ax.axvline if vertical else ax.axhline
    if lo - chance < 0.5 * (100 - chance):  # some row is within half the way to 100 %: show chance itself
        lo = min(lo, chance)
        line(chance, color="0.5", ls=":", lw=1)
    else:
        ax.text(0.01, 0.01, f"chance {chance:.0f} % (off scale)", transform=ax.transAxes, fontsize=6, color="0.4")
    pad = 0.04 * max(hi - lo, 1.0)
    (ax.set_xlim if vertical else ax.set_ylim)(lo - pad, min(100.0, hi) + pad)


def seeds_per_dataset(agg, plots: Path, styles: dict) -> list[Path]:
    """Per dataset: each row's seeds as dots, its mean and 95 % interval as a bar, chance as a line."""
    if agg.empty:
        return []
    datasets = sorted(agg["dataset"].unique())
    rows = max(agg.groupby("dataset").size())
    fig, axes = pyplot.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 0.24 * rows + 1.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        part = agg[agg["dataset"] == ds]
        higher = higher_is_better(part["metric"].iloc[0])
        part = part.sort_values("mean", ascending=higher)
        for y, (_, r) in enumerate(part.iterrows()):
            st = styles[r["method"]]
            jitter = np.linspace(-0.15, 0.15, len(r["values"])) if len(r["values"]) > 1 else [0.0]
            ax.plot(r["values"], y + np.asarray(jitter), ".", color=st["color"], ms=3, alpha=0.7)
            ax.errorbar(r["mean"], y, xerr=0 if np.isnan(r["ci"]) else r["ci"], **point_style(st), capsize=2)
        ax.set_yticks(range(len(part)), [row_label(m, v) for m, v in zip(part["method"], part["variant"])],
                      fontsize=7)  # fmt: skip
        _chance_or_note(ax, part, vertical=True)
        ax.set_xlabel(_metric_label(part["metric"].iloc[0]), fontsize=8)
        ax.set_title(ds, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("test metric per seed (dots) and mean with 95 % interval (bar)", fontsize=9)
    return [save(fig, plots / "accuracy_per_dataset.png")]


def metric_against(agg, column: str, label: str, name: str, plots: Path, styles: dict) -> list[Path]:
    """Test metric (mean, 95 % interval) against `column` (log scale), one panel per dataset, one legend."""
    agg = agg[agg[column].notna() & (agg[column] > 0)] if len(agg) else agg
    if agg.empty:
        return []
    datasets = sorted(agg["dataset"].unique())
    fig, axes = pyplot.subplots(1, len(datasets), figsize=(3.8 * len(datasets), 3.4), squeeze=False)
    handles = {}
    for ax, ds in zip(axes[0], datasets):
        part = agg[agg["dataset"] == ds]
        for _, r in part.iterrows():
            h = ax.errorbar(r[column], r["mean"], yerr=0 if np.isnan(r["ci"]) else r["ci"],
                            **point_style(styles[r["method"]]), capsize=2)  # fmt: skip
            handles.setdefault(row_label(r["method"], r["variant"]), h)
        _chance_or_note(ax, part, vertical=False)
        ax.set_xscale("log")
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel(_metric_label(part["metric"].iloc[0]), fontsize=8)
        ax.set_title(ds, fontsize=9)
        ax.grid(alpha=0.3)
    legend(fig, handles)
    return [save(fig, plots / name)]


def run_label(record: dict) -> str:
    marks = [t for t in record.get("tags", []) if t in ("smoke", "budget")]
    return record["method"] + (f" [{'+'.join(marks)}]" if marks else "")


def first_runs(records: list[dict]) -> dict[tuple[str, str], dict]:
    """One ok run per (label, dataset): the lowest seed, so a plot shows one learning trajectory."""
    out: dict[tuple[str, str], dict] = {}
    for r in sorted((r for r in records if r["status"] == "ok"), key=lambda r: r["seed"]):
        out.setdefault((run_label(r), r["dataset"]), r)
    return out


def _learns_size(method: str, runs: list[dict]) -> bool:
    """The method card's learned_size; for a method the report cannot load, whether any logged size changed."""
    if (known := learns_size(method)) is not None:
        return known
    sizes = [json_sizes(h) for r in runs for h in r.get("history", [])]
    return len({tuple(sorted(s.items())) for s in sizes}) > 1


def json_sizes(epoch: dict) -> dict[str, float]:
    """One number per layer: the mean over dimensions of a per-dimension size."""
    return {k: float(np.mean(v)) for k, v in (epoch.get("kernel_sizes") or {}).items()}


def kernel_size_curves(records: list[dict], plots: Path) -> list[Path]:
    by_method: dict[str, list[dict]] = defaultdict(list)
    for (label, _), r in first_runs(records).items():
        if r.get("history") and r["history"][0].get("kernel_sizes"):
            by_method[label].append(r)
    written = []
    for label, runs in sorted(by_method.items()):
        if not _learns_size(runs[0]["method"], runs):
            continue
        runs = sorted(runs, key=lambda r: r["dataset"])
        fig, axes = pyplot.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), squeeze=False)
        for ax, r in zip(axes[0], runs):
            epochs = [h["epoch"] + 1 for h in r["history"]]
            layers = list(json_sizes(r["history"][0]))
            for layer in layers:
                ax.plot(epochs, [json_sizes(h).get(layer, np.nan) for h in r["history"]], lw=1, marker="o", ms=2,
                        label=layer)  # fmt: skip
            ax.set_xlabel("epoch")
            ax.set_ylabel("kernel size (mean over dims)")
            ax.set_title(f"{r['dataset']} (seed {r['seed']})", fontsize=8)
            if len(layers) <= 16:
                ax.legend(fontsize=5, ncol=2)
        fig.suptitle(f"learned kernel size per layer: {label}", fontsize=9)
        written.append(save(fig, plots / f"kernel_sizes_{slug(label)}.png"))
    return written


def mosaic(arrays: list[np.ndarray], causal: bool) -> tuple[np.ndarray, list[float]]:
    """One image of several kernels, each scaled to max |value| 1, NaN around them; and each one's tick position.

    2D kernels sit side by side, centred vertically. 1D kernels are rows, right-aligned when causal
    (the present step at the right), else centred.
    """
    scaled = [a / (float(np.abs(a).max()) or 1.0) for a in arrays]
    if scaled[0].ndim == 1:
        width = max(len(a) for a in scaled)
        out = np.full((len(scaled), width), np.nan)
        for i, a in enumerate(scaled):
            start = width - len(a) if causal else (width - len(a)) // 2
            out[i, start : start + len(a)] = a
        return out, list(range(len(scaled)))
    height = max(a.shape[0] for a in scaled)
    tiles, ticks, x = [], [], 0
    for a in scaled:
        tile = np.full((height, a.shape[1] + 1), np.nan)
        top = (height - a.shape[0]) // 2
        tile[top : top + a.shape[0], : a.shape[1]] = a
        tiles.append(tile)
        ticks.append(x + (a.shape[1] - 1) / 2)
        x += a.shape[1] + 1
    return np.concatenate(tiles, axis=1), ticks


def kernel_images(records: list[dict], plots: Path) -> list[Path]:
    """Per method, per dataset: every layer's learned kernel (first channel pair) and its mask, as mosaics."""
    by_label: dict[str, list[dict]] = defaultdict(list)
    for (label, _), r in sorted(first_runs(records).items()):
        if r.get("kernel_snapshot"):
            by_label[label].append(r)
    written = []
    for label, runs in sorted(by_label.items()):
        panels = []  # (run, part, layer names, arrays)
        for r in runs:
            shots = r["kernel_snapshot"]
            for part in ("kernel", "mask"):
                names = [k for k in shots if part in shots[k]]
                if names:
                    panels.append((r, part, names, [decode(shots[k][part]) for k in names]))
        fig, axes = pyplot.subplots(len(panels), 1, figsize=(9, 1.9 * len(panels) + 0.5), squeeze=False)
        for ax, (r, part, names, arrays) in zip(axes[:, 0], panels):
            causal = bool(r["kernel_snapshot"][names[0]].get("causal"))
            image, ticks = mosaic(arrays, causal)
            cmap, lo = ("RdBu_r", -1.0) if part == "kernel" else ("viridis", 0.0)
            ax.imshow(image, cmap=cmap, vmin=lo, vmax=1.0, aspect="auto" if arrays[0].ndim == 1 else "equal",
                      interpolation="nearest")  # fmt: skip
            short = [n.replace("features.", "").replace(".body", "") for n in names]
            if arrays[0].ndim == 1:
                ax.set_yticks(ticks, short, fontsize=5)
                ax.set_xlabel(
                    "kernel position (present step at the right)" if causal else "kernel position", fontsize=6
                )
            else:
                ax.set_xticks(ticks, short, fontsize=5, rotation=90)
                ax.set_yticks([])
            ax.set_title(f"{r['dataset']} (seed {r['seed']}): {part}s per layer, each scaled to max |value| 1",
                         fontsize=7)  # fmt: skip
        fig.suptitle(f"learned kernels and masks: {label}", fontsize=8)
        written.append(save(fig, plots / f"kernels_{slug(label)}.png"))
    return written


def crossres_drop(records: list[dict], plots: Path) -> list[Path]:
    """Source, out-of-the-box and fine-tuned test metric per method, one panel per (dataset, source→target)."""
    groups: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in records:
        cr = r.get("crossres")
        if r["status"] != "ok" or not cr:
            continue
        panel = f"{r['dataset']} {cr['source_resolution']}→{cr['target_resolution']} px"
        for part in ("source", "ootb", "finetuned"):
            if isinstance(cr.get(part), (int, float)):
                groups[panel][run_label(r)][part].append(cr[part])
    if not groups:
        return []
    fig, axes = pyplot.subplots(1, len(groups), figsize=(max(4.5, 1.1 * max(map(len, groups.values())) + 2) * len(groups),
                                3.8), squeeze=False)  # fmt: skip
    parts = {"source": "source", "ootb": "out of the box", "finetuned": "fine-tuned"}
    for ax, (panel, by_label) in zip(axes[0], sorted(groups.items())):
        labels = sorted(by_label)
        x = np.arange(len(labels))
        for k, (part, name) in enumerate(parts.items()):
            means = [np.mean(by_label[m][part]) if by_label[m][part] else np.nan for m in labels]
            stds = [np.std(by_label[m][part], ddof=1) if len(by_label[m][part]) > 1 else 0 for m in labels]
            ax.bar(x + (k - 1) * 0.27, means, 0.27, yerr=stds, label=name)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(panel)
        ax.legend(fontsize=7)
    return [save(fig, plots / "crossres_drop.png")]


def training_curves(records: list[dict], plots: Path, styles: dict) -> list[Path]:
    """Per dataset: training loss and validation metric per epoch, one line per configuration (mean over
    the seeds still training at that epoch: with early stopping, runs end at different epochs)."""
    curves: dict[str, dict[str, list[list[dict]]]] = defaultdict(lambda: defaultdict(list))
    methods_of: dict[str, str] = {}
    for r in records:
        if r["status"] == "ok" and r.get("history"):
            curves[r["dataset"]][run_label(r)].append(r["history"])
            methods_of[run_label(r)] = r["method"]
    written = []
    for dataset, by_label in sorted(curves.items()):
        fig, (left, right) = pyplot.subplots(1, 2, figsize=(9, 3.6))
        handles = {}
        for label, histories in sorted(by_label.items()):
            st = styles[methods_of[label]]
            n = max(len(h) for h in histories)
            for ax, key in ((left, "train_loss"), (right, "val")):
                values = np.full((len(histories), n), np.nan)
                for i, h in enumerate(histories):
                    values[i, : len(h)] = [e[key] for e in h]
                (line,) = ax.plot(np.arange(1, n + 1), np.nanmean(values, axis=0), lw=1, color=st["color"],
                                  ls=st["ls"], marker=st["marker"], mfc=st["mfc"], ms=2.5, markevery=max(1, n // 8))  # fmt: skip
                handles.setdefault(label, line)
        left.set_ylabel("training loss")
        left.set_yscale("log")
        right.set_ylabel("validation metric")
        for ax in (left, right):
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        legend(fig, handles)
        fig.suptitle(f"training curves: {dataset}", fontsize=9)
        written.append(save(fig, plots / f"training_curves_{slug(dataset)}.png"))
    return written


def cost_plots(agg, plots: Path, styles: dict) -> list[Path]:
    """Test metric against forward FLOPs per sample and against training time (on the runs' device)."""
    out = metric_against(agg, "flops_fwd", "forward FLOPs per sample", "accuracy_vs_cost.png", plots, styles)
    return out + metric_against(agg, "train_time_s", "training time (s)", "accuracy_vs_training_time.png", plots,
                                styles)  # fmt: skip


def build_plots(
    records: list[dict], agg, plots: str | Path, styles: dict | None = None, paper_plots=None
) -> list[Path]:
    """Every plot; `paper_plots(records, plots)` draws the paper tables' (bench/report/paper_tables.py)."""
    plots = Path(plots)
    plots.mkdir(parents=True, exist_ok=True)
    styles = styles or method_styles(r["method"] for r in records)  # one look per method in every plot
    return [
        *seeds_per_dataset(agg, plots, styles),
        *paired_differences(agg, plots, styles),
        *metric_against(agg, "params", "trainable parameters", "accuracy_vs_params.png", plots, styles),
        *cost_plots(agg, plots, styles),
        *(paper_plots(records, plots) if paper_plots else ()),
        *kernel_size_curves(records, plots),
        *kernel_images(records, plots),
        *crossres_drop(records, plots),
        *training_curves(records, plots, styles),
    ]


def difference_scale(rows: list[tuple]) -> float:
    """The half-width of a paired-difference panel: it holds every row whose mean difference is within 3x the
    upper quartile of the rows' |means| (and their seeds and intervals); rows further out are named, not drawn,
    so one method 20 points off does not squeeze the differences that matter into a few pixels."""
    means = np.abs([r[0] for r in rows])
    near = [r for r in rows if abs(r[0]) <= max(3 * float(np.percentile(means, 75)), 1.0)]
    return 1.1 * max([0.5, *(abs(v) for r in near for v in (r[1], r[2], *r[3]))])


def paired_differences(agg, plots: Path, styles: dict, baseline: str = "conv") -> list[Path]:
    """Per dataset: each row minus the baseline at the same seed (dots), the mean difference and its 95 % paired
    bootstrap interval (over seeds, and over test examples where the runs hold them), a line at 0: the
    differences that matter, on their own scale rather than squeezed between chance and 100 %. The reference models
    (summary.REFERENCE_METHODS) are left out: far below, they would squeeze the scale again."""
    if agg.empty or baseline not in set(agg["method"]):
        return []
    datasets = sorted(set(agg.loc[agg["method"] == baseline, "dataset"]))
    panels = []
    for ds in datasets:
        part = agg[agg["dataset"] == ds]
        base = part[(part["method"] == baseline) & (part["variant"].fillna("") == "")]
        if base.empty:
            continue
        b = base.iloc[0]
        sign = 1.0 if higher_is_better(b["metric"]) else -1.0
        rows = []
        for _, r in part.iterrows():
            if r.name == b.name or r["method"] in REFERENCE_METHODS:
                continue
            seeds = sorted(set(r["by_seed"]) & set(b["by_seed"]))
            if not seeds:
                continue
            mean, lo, hi = stats.paired_bootstrap(
                r["by_seed"], b["by_seed"], r["correct"] or None, b["correct"] or None
            )
            diffs = [sign * (r["by_seed"][s] - b["by_seed"][s]) for s in seeds]
            lo, hi = sorted((sign * lo, sign * hi))
            rows.append((sign * mean, lo, hi, diffs, row_label(r["method"], r["variant"]), r["method"]))
        if rows:
            panels.append((ds, b["metric"], sorted(rows)))
    if not panels:
        return []
    height = 0.24 * max(len(p[2]) for p in panels) + 1.6
    fig, axes = pyplot.subplots(1, len(panels), figsize=(4.4 * len(panels), height), squeeze=False)
    for ax, (ds, metric, rows) in zip(axes[0], panels):
        lim = difference_scale(rows)
        for y, (mean, lo, hi, diffs, _label, method) in enumerate(rows):
            st = styles.get(method, {"color": "0.3", "marker": "o", "mfc": "0.3", "ls": "-"})
            if abs(mean) > lim:  # far off: its value in words at the edge, so the near rows keep their scale
                edge = math.copysign(0.97 * lim, mean)
                ax.annotate(
                    f"{mean:+.1f} [{lo:+.1f}, {hi:+.1f}], off scale",
                    (edge, y),
                    fontsize=6,
                    va="center",
                    ha="right" if mean > 0 else "left",
                    color=st["color"],
                )  # fmt: skip (inside the axes)
                continue
            jitter = np.linspace(-0.15, 0.15, len(diffs)) if len(diffs) > 1 else [0.0]
            ax.plot(diffs, y + np.asarray(jitter), ".", color=st["color"], ms=3, alpha=0.7)
            ax.errorbar(mean, y, xerr=[[mean - lo], [hi - mean]], **point_style(st), capsize=2)
        ax.set_xlim(-lim, lim)
        ax.axvline(0, color="0.4", lw=1)
        ax.set_yticks(range(len(rows)), [r[4] for r in rows], fontsize=7)
        what = METRIC_DIFF.get(metric, metric)
        ax.set_xlabel(f"row minus {baseline}, {what}", fontsize=8)
        ax.set_title(ds, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"paired differences to {baseline}: per seed (dots), mean and 95 % paired bootstrap interval",
                 fontsize=9)  # fmt: skip
    return [save(fig, plots / "paired_differences.png")]
