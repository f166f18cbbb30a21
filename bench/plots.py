"""The report's plots, from the stored runs only (results/plots/*.png).

- accuracy vs parameters per paper table, our rows beside the published points;
- test metric vs training time per dataset;
- learned kernel size per layer over training, for every method that learns its size;
- the learned continuous kernels and masks (bench/kernels.py snapshots) as images;
- the cross-resolution drop per method (source, out of the box, fine-tuned);
- training curves (training loss, validation metric) per dataset.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def run_label(record: dict) -> str:
    marks = [t for t in record.get("tags", []) if t in ("smoke", "budget")]
    return record["method"] + (f" [{'+'.join(marks)}]" if marks else "")


def first_runs(records: list[dict]) -> dict[tuple[str, str], dict]:
    """One ok run per (label, dataset): the lowest seed, so a plot shows one learning trajectory."""
    out: dict[tuple[str, str], dict] = {}
    for r in sorted((r for r in records if r["status"] == "ok"), key=lambda r: r["seed"]):
        out.setdefault((run_label(r), r["dataset"]), r)
    return out


def accuracy_vs_params(records: list[dict], plots: Path) -> list[Path]:
    """Per paper table: ours (mean ± std over seeds) and the published points, against parameters."""
    from bench.paper_tables import TABLES, build
    from bench.reference import load_reference

    refs, written = load_reference(), []
    for table in TABLES:
        built = build(table, records, refs)
        if not built.cells or table.crossres:
            continue
        cols = list(dict.fromkeys(c for c, _ in built.columns))
        plt = _plt()
        fig, axes = plt.subplots(1, len(cols), figsize=(6.5 * len(cols), 4.5), squeeze=False)
        for ax, col in zip(axes[0], cols):
            for row in built.rows:
                cell, params = built.cells.get((row, col, "accuracy")), built.params.get(row)
                if cell and cell.values and params:
                    err = 0 if math.isnan(cell.std) else cell.std
                    ax.errorbar(np.median(params), cell.mean, yerr=err, fmt="o", ms=4, color="tab:blue")
                    ax.annotate(
                        row, (np.median(params), cell.mean), fontsize=6, xytext=(2, 2), textcoords="offset points"
                    )
                ref = built.ref(row, col, "accuracy")
                if ref and ref.params and built.base.get(row) == row:
                    ax.plot(ref.params, ref.value, "s", mfc="none", color="tab:red", ms=5)
                    ax.annotate(row, (ref.params, ref.value), fontsize=6, color="tab:red", xytext=(2, -8),
                                textcoords="offset points")  # fmt: skip
            ax.plot([], [], "o", color="tab:blue", label="ours")
            ax.plot([], [], "s", mfc="none", color="tab:red", label="published")
            ax.set_xscale("log")
            ax.set_xlabel("trainable parameters")
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(col)
            ax.legend(fontsize=7)
        fig.suptitle(table.title, fontsize=9)
        written.append(_save(fig, plots / f"{table.key}_accuracy_vs_params.png"))
    return written


def accuracy_vs_time(agg, plots: Path) -> list[Path]:
    """Test metric against mean training time, one panel per dataset (from report.aggregate)."""
    agg = agg[agg["train_time_s"].notna()] if len(agg) else agg
    datasets = sorted(agg["dataset"].unique()) if len(agg) else []
    if not datasets:
        return []
    plt = _plt()
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.8 * len(datasets), 3.4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        sub = agg[agg["dataset"] == ds]
        ax.errorbar(sub["train_time_s"], sub["mean"], yerr=sub["std"].fillna(0), fmt="o", ms=4)
        for _, r in sub.iterrows():
            label = r["method"] + (f" [{r['variant']}]" if isinstance(r["variant"], str) and r["variant"] else "")
            ax.annotate(label, (r["train_time_s"], r["mean"]), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("training time (s)")
        ax.set_ylabel("test accuracy (%)" if sub["metric"].iloc[0] == "accuracy" else "test MSE")
        ax.set_title(ds)
    return [_save(fig, plots / "accuracy_vs_training_time.png")]


def _learns_size(method: str, runs: list[dict]) -> bool:
    """The method card's learned_size; for a method the report cannot load, whether any logged size changed."""
    import methods

    try:
        return methods.card_of(method).learned_size
    except Exception:
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
        plt = _plt()
        fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), squeeze=False)
        for ax, r in zip(axes[0], runs):
            epochs = [h["epoch"] + 1 for h in r["history"]]
            layers = list(json_sizes(r["history"][0]))
            for layer in layers:
                ax.plot(
                    epochs,
                    [json_sizes(h).get(layer, np.nan) for h in r["history"]],
                    lw=1,
                    marker="o",
                    ms=2,
                    label=layer,
                )
            ax.set_xlabel("epoch")
            ax.set_ylabel("kernel size (mean over dims)")
            ax.set_title(f"{r['dataset']} (seed {r['seed']})", fontsize=8)
            if len(layers) <= 16:
                ax.legend(fontsize=5, ncol=2)
        fig.suptitle(f"learned kernel size per layer: {label}", fontsize=9)
        written.append(_save(fig, plots / f"kernel_sizes_{slug(label)}.png"))
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
    from bench.kernels import decode

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
        plt = _plt()
        fig, axes = plt.subplots(len(panels), 1, figsize=(9, 1.9 * len(panels) + 0.5), squeeze=False)
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
        written.append(_save(fig, plots / f"kernels_{slug(label)}.png"))
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
    plt = _plt()
    fig, axes = plt.subplots(1, len(groups), figsize=(max(4.5, 1.1 * max(map(len, groups.values())) + 2) * len(groups),
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
    return [_save(fig, plots / "crossres_drop.png")]


def training_curves(records: list[dict], plots: Path) -> list[Path]:
    """Per dataset: training loss and validation metric per epoch, one line per method (mean over seeds)."""
    curves: dict[str, dict[str, list[list[dict]]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r["status"] == "ok" and r.get("history"):
            curves[r["dataset"]][run_label(r)].append(r["history"])
    written = []
    for dataset, by_label in sorted(curves.items()):
        plt = _plt()
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
        for label, histories in sorted(by_label.items()):
            n = min(len(h) for h in histories)
            epochs = np.arange(1, n + 1)
            for ax, key in ((left, "train_loss"), (right, "val")):
                ax.plot(
                    epochs,
                    np.mean([[h[i][key] for i in range(n)] for h in histories], axis=0),
                    lw=1,
                    marker="o",
                    ms=2,
                    label=label,
                )
        left.set_ylabel("training loss")
        right.set_ylabel("validation metric")
        for ax in (left, right):
            ax.set_xlabel("epoch")
        right.legend(fontsize=6, ncol=2)
        fig.suptitle(f"training curves: {dataset}", fontsize=9)
        written.append(_save(fig, plots / f"training_curves_{slug(dataset)}.png"))
    return written


def build_plots(records: list[dict], agg, plots: str | Path) -> list[Path]:
    plots = Path(plots)
    plots.mkdir(parents=True, exist_ok=True)
    return [
        *accuracy_vs_params(records, plots),
        *accuracy_vs_time(agg, plots),
        *kernel_size_curves(records, plots),
        *kernel_images(records, plots),
        *crossres_drop(records, plots),
        *training_curves(records, plots),
    ]
