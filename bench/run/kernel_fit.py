"""Kernel fitting: how well each kernel parameterisation describes a fixed target kernel.

The expressivity benchmark of CKConv (Romero et al., ICLR 2022: 1D targets) and FlexConv
(Romero et al., ICLR 2022: 2D targets, PSNR): a kernel generator is fitted, alone, by full-batch
regression to a target sampled on a grid; no data set, no convolution. Run it with
`python run_all.py fit` (or `--suite kernel-fit`); it writes under results/kernel-fit/:
fits.csv (one row per net, target, grid and seed), curves.csv (MSE every `log_every` iterations),
table.md (mean and 95 % t-interval over seeds, published numbers beside), curves.png.

Generators (`NETS`), each at the same parameter budget (the size that comes closest to it; the
table reports the counts):
- magnet, gabor, fourier: the MFN kernel nets of FlexConv (methods/kernelnets.py), 3 hidden layers;
- siren: CKConv's SIREN (omega_0 = 30, the suite's default), 3 linears;
- relu: a 3-linear ReLU MLP with PyTorch's default init (CKConv's ReLU net also had a norm layer);
- s4d: the S4D layer's kernel (methods/s4d.py), 1 channel: causal lags in 1D, the S4ND outer
  product of two bidirectional axis kernels in 2D (rank one: it cannot describe a general image);
- smpconv: the SMPConv layer's kernel (methods/smpconv.py), 1 channel, no small dense kernel.
  Its points start spread over the grid (coord_std 1, truncated to [-1, 1]; in 1D the causal
  layer's 1 - 2|z|, any grid length) with a radius of
  the mean point spacing, 2 / P^(1/dim), not at the layer's init near the centre, which is
  made for kernels that start small.
Every generator sees positions in [-1, 1]^dim (the suite's layers' grid).

Targets (`TARGETS`) on a grid of n points per axis (1D: n1 = 256, where the CKConv README's chirp
had 1,000, to fit the CPU time; 2D: 33 x 33 as the FlexConv CSVs), after experiments.md section 1:
- gaussian: exp(-|x|^2 / (2 0.2^2)) on [-1, 1]^dim, peak 1;
- constant: CKConv's step (+1 then -1) in 1D; FlexConv's quadrant checkerboard (+-1) in 2D;
- sawtooth: alternating 0/1 (even samples 0) in 1D; 1 with 0 at (even, even) in 2D;
- chirp: sin(x^2) on x in [-15, 0] (CKConv's README) in 1D; sin(|x|^2) on [-4, 4]^2 in 2D (the
  highest frequency stays below the 33-grid's Nyquist limit);
- gabor: exp(-|x|^2 / (2 0.3^2)) cos(2 pi 4 x_1) on [-1, 1]^dim (FlexConv: a sine times a Gaussian;
  the cosine, as sin(8 pi x) vanishes on every point of a 17-grid);
- noise: uniform [0, 1), drawn once with seed 0 (the same target for every run seed);
- camera: scikit-image's `camera` (512 x 512, shipped in the package: no download), scaled to
  [-1, 1] as FlexConv's CameraMan: 2D the whole image area-averaged to 33 x 33, 1D its middle row
  linearly resampled to n1 points.

Training: Adam (lr 0.01, FlexConv's), full batch, MSE, `iters` iterations (default 500; the papers
ran 3k-20k, which does not fit a few CPU minutes), the same
for every generator; seeds 0-2. All runs of one generator and grid train in one loop: one Adam over
all their parameters with the sum of their losses. Adam is per element, so each run's update is
exactly what its own optimizer would make. Metrics: the final MSE and PSNR = 10 log10(R^2 / MSE), R
= max - min of the target, unclamped (the FlexConv code clamps predictions to [0, 1] and uses R = 1:
signed targets then hit a ceiling, experiments.md 1b). The best MSE over iterations, which the papers
report, is in fits.csv too.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

TARGETS = ("gaussian", "constant", "sawtooth", "chirp", "gabor", "noise", "camera")
NETS = ("magnet", "gabor", "fourier", "siren", "relu", "s4d", "smpconv")
DEFAULTS = {"iters": 500, "lr": 0.01, "budget": 1200, "n1": 256, "n2": 33, "log_every": 10}


# -- targets ----------------------------------------------------------------------------------
def _axes(n: int, dim: int, lo: float = -1.0, hi: float = 1.0) -> list[torch.Tensor]:
    x = torch.linspace(lo, hi, n)
    return list(torch.meshgrid(*([x] * dim), indexing="ij"))


def camera_image() -> torch.Tensor:
    """scikit-image's `camera` in [-1, 1], (512, 512) float32."""
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - requirements.txt installs it
        raise RuntimeError("the camera target needs scikit-image (pip install scikit-image)") from exc
    img = torch.from_numpy(data.camera()).float()
    return img / 127.5 - 1.0


def make_target(name: str, dim: int, n: int) -> torch.Tensor:
    """The target kernel, shape (n,) * dim, float32."""
    if name == "gaussian":
        r2 = sum(a.square() for a in _axes(n, dim))
        return torch.exp(-r2 / (2 * 0.2**2))
    if name == "constant":
        idx = torch.arange(n)
        first = (idx < n // 2).float() * 2 - 1  # +1 on the first half, -1 on the second
        return first if dim == 1 else first[:, None] * first[None, :]
    if name == "sawtooth":
        odd = (torch.arange(n) % 2).float()
        return odd if dim == 1 else 1.0 - (1.0 - odd)[:, None] * (1.0 - odd)[None, :]
    if name == "chirp":
        if dim == 1:
            return torch.sin(torch.linspace(-15.0, 0.0, n).square())
        return torch.sin(sum(a.square() for a in _axes(n, dim, -4.0, 4.0)))
    if name == "gabor":
        axes = _axes(n, dim)
        envelope = torch.exp(-sum(a.square() for a in axes) / (2 * 0.3**2))
        return envelope * torch.cos(2 * math.pi * 4 * axes[0])  # cos: never zero on every point of a grid
    if name == "noise":
        return torch.rand((n,) * dim, generator=torch.Generator().manual_seed(0))
    if name == "camera":
        img = camera_image()
        if dim == 2:
            return torch.nn.functional.adaptive_avg_pool2d(img[None, None], n)[0, 0]
        row = img[img.shape[0] // 2][None, None]
        return torch.nn.functional.interpolate(row, size=n, mode="linear", align_corners=True)[0, 0]
    raise ValueError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")


# -- generators -------------------------------------------------------------------------------
class Generator(nn.Module):
    """Wraps a kernel generator: `forward()` returns its kernel on the grid, shape (n,) * dim."""

    def __init__(
        self, body: nn.Module, sample: Callable[[], torch.Tensor], params: list[nn.Parameter], dim: int, n: int
    ):
        super().__init__()
        self.body, self._sample, self.dim, self.n = body, sample, dim, n
        self._params = params

    def trainable(self) -> list[nn.Parameter]:
        return self._params

    def count(self) -> int:
        return sum(p.numel() for p in self._params)

    def forward(self) -> torch.Tensor:
        return self._sample().reshape((self.n,) * self.dim)


def _grid_positions(n: int, dim: int) -> torch.Tensor:
    return torch.stack([a.reshape(-1) for a in _axes(n, dim)], -1)  # (n^dim, dim)


def build_generator(net: str, dim: int, n: int, size: int) -> Generator:
    """Generator `net` of width/points/modes `size` on an n^dim grid."""
    if net in ("magnet", "gabor", "fourier", "siren"):
        from methods.kernelnets import make_kernel_net

        body = make_kernel_net(net, dim, 1, hidden=size, no_layers=3, omega_0=30.0, input_scale=None, init_spatial=1.0)
        pos = _grid_positions(n, dim)
        return Generator(body, lambda: body(pos), list(body.parameters()), dim, n)
    if net == "relu":
        body = nn.Sequential(nn.Linear(dim, size), nn.ReLU(), nn.Linear(size, size), nn.ReLU(), nn.Linear(size, 1))
        pos = _grid_positions(n, dim)
        return Generator(body, lambda: body(pos), list(body.parameters()), dim, n)
    if net == "s4d":
        from methods.s4d import S4DConv

        body = S4DConv(1, 1, dim=dim, causal=dim == 1, size=n, state_size=2 * size, kernel_size=None if dim == 1 else n)
        return Generator(body, body.sample_kernel, body.ssm_parameters() + [body.C], dim, n)
    if net == "smpconv":
        from methods.smpconv import SMPConv

        body = SMPConv(1, 1, dim=dim, causal=dim == 1, size=n, n_points=size, radius=2.0 / size ** (1.0 / dim),
                       coord_std=1.0, small_kernel_size=0, kernel_size=n)  # fmt: skip
        return Generator(body, body.sample_kernel, [body.positions, body.radius, body.weight], dim, n)
    raise ValueError(f"unknown kernel net {net!r}; known: {', '.join(NETS)}")


def size_for_budget(net: str, dim: int, n: int, budget: int) -> int:
    """The width (points, modes) whose parameter count comes closest to `budget` (ties: the smaller)."""

    def count(size: int) -> int:
        return build_generator(net, dim, n, size).count()

    lo, hi = 1, 2
    while count(hi) < budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # count is increasing in size: bisect for the first size at or above the budget
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < budget else (lo, mid)
    return lo if budget - count(lo) <= count(hi) - budget else hi


# -- fitting ----------------------------------------------------------------------------------
def psnr(mse: float, target: torch.Tensor) -> float:
    peak = float(target.max() - target.min()) or 1.0
    return 10.0 * math.log10(peak**2 / mse) if mse > 0 else math.inf


class _Sampler(nn.Module):
    """forward() = the generator's kernel: what torch.func.functional_call calls."""

    def __init__(self, gen: Generator):
        super().__init__()
        self.gen = gen

    def forward(self) -> torch.Tensor:
        return self.gen()


def fit_many(gens: list[Generator], targets: list[torch.Tensor], iters: int, lr: float, log_every: int):
    """Fit every generator to its target together; MSE curves, shape (runs, points).

    The runs' parameters are stacked and one vmapped call evaluates every kernel (torch.func), one
    Adam steps the stacked tensors with the sum of the losses: Adam is per element, so each run
    moves exactly as it would alone. Parameters a generator does not train stay at their values.
    """
    from torch.func import functional_call, stack_module_state, vmap

    samplers = [_Sampler(g) for g in gens]
    names = {id(p) for p in gens[0].trainable()}
    trained = [n for n, p in samplers[0].named_parameters() if id(p) in names]
    params, buffers = stack_module_state(samplers)
    frozen = {n: p.detach() for n, p in params.items() if n not in trained}
    leaves = {n: params[n] for n in trained}
    base = samplers[0]

    def one(p, b):
        return functional_call(base, ({**p, **b},), ())

    evaluate = vmap(one, randomness="different")
    target = torch.stack(targets)
    opt = torch.optim.Adam(list(leaves.values()), lr=lr)
    clip = [n for n in trained if n.endswith("body.radius")]  # SMPConv's post-step clip of its radii
    logged = []
    for it in range(iters + 1):
        kernels = evaluate({**leaves, **frozen}, buffers)
        losses = (kernels - target).square().flatten(1).mean(1)
        if it % log_every == 0 or it == iters:
            logged.append(losses.detach())
        if it == iters:
            break
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
        with torch.no_grad():
            for n in clip:
                leaves[n].clamp_(*_radius_range())
    with torch.no_grad():  # the fitted values back into each generator
        for i, sampler in enumerate(samplers):
            for n, p in sampler.named_parameters():
                if n in leaves:
                    p.copy_(leaves[n][i])
    steps = [it for it in range(iters + 1) if it % log_every == 0 or it == iters]
    return steps, torch.stack(logged, 1)


def _radius_range() -> tuple[float, float]:
    from methods.smpconv import RADIUS_RANGE

    return RADIUS_RANGE


def run(
    out: Path, *, nets=NETS, targets=TARGETS, dims=(1, 2), seeds=(0, 1, 2), progress=print, **settings
) -> list[dict]:
    """Every net x target x dim x seed; writes fits.csv, curves.csv, table.md and curves.png under `out`."""
    cfg = {**DEFAULTS, **settings}
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    # one thread: the ops are tiny, and on a shared CPU a second OpenMP thread spin-waits (measured
    # 10 iterations of one 1D MAGNet: 0.07 s on 1 thread, 0.5-8 s on 2, under a load of 6 on 2 cores)
    torch.set_num_threads(int(cfg.get("threads", 1)))
    try:
        rows, curve_rows = _run_all(out, nets, targets, dims, seeds, progress, cfg)
    finally:
        torch.set_num_threads(threads)
    return rows


def _run_all(out, nets, targets, dims, seeds, progress, cfg):
    rows, curve_rows = [], []
    started = time.perf_counter()
    for dim in dims:
        n = int(cfg["n1"] if dim == 1 else cfg["n2"])
        tgts = {name: make_target(name, dim, n) for name in targets}
        for net in nets:
            size = size_for_budget(net, dim, n, int(cfg["budget"]))
            gens, keys = [], []
            for name in targets:
                for seed in seeds:
                    torch.manual_seed(seed)
                    gens.append(build_generator(net, dim, n, size))
                    keys.append((name, seed))
            t0 = time.perf_counter()
            steps, curves = fit_many(gens, [tgts[k] for k, _ in keys], int(cfg["iters"]), float(cfg["lr"]),
                                     int(cfg["log_every"]))  # fmt: skip
            seconds = time.perf_counter() - t0
            curves = curves.nan_to_num(nan=math.inf).tolist()
            for (name, seed), gen, curve in zip(keys, gens, curves):
                final, best = curve[-1], min(curve)
                rows.append(dict(net=net, target=name, dim=dim, grid=n, seed=seed, size=size, params=gen.count(),
                                 iters=int(cfg["iters"]), lr=float(cfg["lr"]), mse=final, psnr=psnr(final, tgts[name]),
                                 best_mse=best, seconds=seconds / len(gens)))  # fmt: skip
                curve_rows += [
                    dict(net=net, target=name, dim=dim, seed=seed, iter=s, mse=v) for s, v in zip(steps, curve)
                ]
            progress(f"kernel-fit {dim}D {net:8s} size {size:4d} params {gens[0].count():5d}: {seconds:6.1f} s")
    _write_csv(out / "fits.csv", rows)
    _write_csv(out / "curves.csv", curve_rows)
    (out / "table.md").write_text(table_markdown(rows, cfg, time.perf_counter() - started))
    plot_curves(curve_rows, out / "curves.png")
    return rows, curve_rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# -- report -----------------------------------------------------------------------------------
def _cell(values: list[float], digits: int) -> str:
    from bench.report.stats import mean_ci

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
    from bench.report.reference import read_csv  # checks every row

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
    from bench.report.style import legend, pyplot, save

    panels = list(dict.fromkeys((r["dim"], r["target"]) for r in curve_rows))
    nets = list(dict.fromkeys(r["net"] for r in curve_rows))
    cols = min(7, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = pyplot.subplots(nrows, cols, figsize=(2.6 * cols, 2.3 * nrows), squeeze=False)
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
    import fnmatch

    from bench.base import UserError
    from bench.run.grid import parse_seeds

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
    run(Path(args.out), nets=nets, targets=targets, dims=dims, seeds=seeds, **settings)
    print(
        f"wrote {args.out}/table.md, fits.csv, curves.csv, curves.png; wall time {time.perf_counter() - started:.0f} s"
    )
    return 0
