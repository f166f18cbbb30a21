"""Kernel fitting's report and command: table.md (mean and 95 % t-interval over seeds, the published numbers
beside) and curves.png from the fits of bench/run/kernel_fit.py, and `python run_all.py fit`."""

from __future__ import annotations

import fnmatch
import math
import time
from pathlib import Path

from bench.base import UserError
from bench.report.reference import read_csv
from bench.report.stats import mean_ci
from bench.report.style import legend, pyplot, save
from bench.run.grid import parse_seeds
from bench.run.kernel_fit import DEFAULTS, NETS, TARGETS, run


# -- report -----------------------------------------------------------------------------------
def _cell(values: list[float], digits: int) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < len(values):
        return "diverged" if not finite else f"{len(values) - len(finite)} diverged"
    mean, half, n = mean_ci(finite)
    return f"{mean:.{digits}f}" if not math.isfinite(half) else f"{mean:.{digits}f} ± {half:.{digits}f}"


def published_rows() -> list[dict]:
    """The kernel-fitting numbers of results/reference/kernel_fit.csv (none when it is absent)."""
    path = Path(__file__).resolve().parents[2] / "results" / "reference" / "kernel_fit.csv"
    if not path.exists():
        return []
    return [dict(model=r.model, dataset=r.dataset, metric=r.metric, value=r.text, source=r.source, note=r.note)
            for r in read_csv(path)]  # fmt: skip


def table_markdown(rows: list[dict], cfg: dict, seconds: float | None = None) -> str:
    """PSNR (dB) and final MSE per target (rows) and net (columns), per grid; mean ± 95 % t-interval over seeds."""
    nets = list(dict.fromkeys(r["net"] for r in rows))
    lines = ["# Kernel fitting", ""]
    seeds = sorted({r["seed"] for r in rows})
    lines.append(
        f"Adam lr {cfg['lr']}, {cfg['iters']} full-batch iterations, seeds {', '.join(map(str, seeds))}; "
        f"parameter budget {cfg['budget']} per net. Cells: mean ± half-width of the 95 % t-interval over seeds. "
        "PSNR = 10 log10(R^2 / MSE), R = the target's max - min, unclamped; MSE at the last iteration."
        + (f" Wall time {seconds:.0f} s." if seconds is not None else "")
    )
    for dim in sorted({r["dim"] for r in rows}):
        part = [r for r in rows if r["dim"] == dim]
        grid = part[0]["grid"]
        counts = {
            net: next(r["params"] for r in part if r["net"] == net)
            for net in nets
            if any(r["net"] == net for r in part)
        }
        cols = list(counts)
        lines += ["", f"## {dim}D, grid {'x'.join([str(grid)] * dim)}", ""]
        lines.append("params: " + ", ".join(f"{net} {c}" for net, c in counts.items()))
        for metric, digits in (("psnr", 2), ("mse", 5)):
            lines += ["", f"{'PSNR (dB), higher is better' if metric == 'psnr' else 'final MSE, lower is better'}", ""]
            lines.append("| target | " + " | ".join(cols) + " |")
            lines.append("|---|" + "---|" * len(cols))
            for name in dict.fromkeys(r["target"] for r in part):
                cells = [
                    _cell([r[metric] for r in part if r["net"] == net and r["target"] == name], digits) for net in cols
                ]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    published = published_rows()
    lines += ["", "## Published kernel-fitting numbers", ""]
    if published:
        lines.append("Not directly comparable: other grids, widths, iterations and a clamped PSNR (see each note).")
        lines += ["", "| model | target | metric | value | source | note |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {p['model']} | {p['dataset']} | {p['metric']} | {p['value']} | {p['source']} | {p['note']} |"
            for p in published
        ]
    lines.append("")
    lines.append(
        "The CKConv paper shows its 1D fits as figures only (no table is known); the FlexConv paper's natural-image "
        "fits are figures as well. The numbers above come from CSV files in the FlexConv repository."
    )
    return "\n".join(lines) + "\n"


def plot_curves(curve_rows: list[dict], path: Path) -> Path:
    """MSE over iterations, mean over seeds: one panel per (dim, target), one line per net."""
    plt = pyplot
    panels = list(dict.fromkeys((r["dim"], r["target"]) for r in curve_rows))
    nets = list(dict.fromkeys(r["net"] for r in curve_rows))
    cols = min(7, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 2.3 * nrows), squeeze=False)
    handles = {}
    for ax, (dim, name) in zip(axes.flat, panels):
        for net in nets:
            pts: dict[int, list[float]] = {}
            for r in curve_rows:
                if r["dim"] == dim and r["target"] == name and r["net"] == net and math.isfinite(r["mse"]):
                    pts.setdefault(r["iter"], []).append(r["mse"])
            if pts:
                xs = sorted(pts)
                (line,) = ax.plot(xs, [sum(pts[x]) / len(pts[x]) for x in xs], lw=1.1, label=net)
                handles.setdefault(net, line)
        ax.set_yscale("log")
        ax.set_title(f"{dim}D {name}", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("MSE (mean over seeds)", fontsize=8)
    legend(fig, handles)
    return save(fig, path)


def main(args) -> int:
    """`run_all.py fit` / `--suite kernel-fit`: --methods picks nets, --datasets targets, --seeds seeds,
    --set iters=, lr=, budget=, n1=, n2=, dims=1|2|1,2, threads= the settings; --dry-run lists the fits."""

    def pick(text: str | None, known: tuple[str, ...], what: str) -> list[str]:
        if not text:
            return list(known)
        chosen = []
        for pat in (t.strip() for t in text.split(",") if t.strip()):
            hits = fnmatch.filter(known, pat)
            if not hits:
                raise UserError(f"kernel-fit: no {what} matches {pat!r}; known: {', '.join(known)}")
            chosen += [h for h in hits if h not in chosen]
        return chosen

    settings: dict = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in {*DEFAULTS, "dims", "threads"}:
            raise UserError(f"kernel-fit: --set takes {', '.join([*DEFAULTS, 'dims', 'threads'])}=VALUE; got {item!r}")
        try:
            settings[key] = tuple(int(v) for v in value.split(",")) if key == "dims" else float(value)
        except ValueError:
            raise UserError(f"kernel-fit: --set {key} needs a number, got {value!r}") from None
    dims = settings.pop("dims", (1, 2))
    if not set(dims) <= {1, 2}:
        raise UserError(f"kernel-fit: dims are 1 and/or 2, got {dims}")
    for key in ("iters", "n1", "n2", "log_every", "budget"):
        if key in settings:
            settings[key] = int(settings[key])
            if settings[key] < 1:
                raise UserError(f"kernel-fit: {key} must be >= 1")
    nets = pick(args.methods, NETS, "kernel net")
    targets = pick(args.datasets, TARGETS, "target")
    seeds = tuple(parse_seeds(args.seeds)) if args.seeds else (0, 1, 2)
    if args.dry_run:
        print(f"{len(nets) * len(targets) * len(dims) * len(seeds)} fits: nets {', '.join(nets)}; targets "
              f"{', '.join(targets)}; dims {dims}; seeds {seeds}; {({**DEFAULTS, **settings})}")  # fmt: skip
        return 0
    started = time.perf_counter()
    out = Path(args.out)
    rows, curve_rows = run(out, nets=nets, targets=targets, dims=dims, seeds=seeds, **settings)
    (out / "table.md").write_text(table_markdown(rows, {**DEFAULTS, **settings}, time.perf_counter() - started))
    plot_curves(curve_rows, out / "curves.png")
    print(
        f"wrote {args.out}/table.md, fits.csv, curves.csv, curves.png; wall time {time.perf_counter() - started:.0f} s"
    )
    return 0
