"""Speed and memory of the continuous-kernel layers: `python -m bench.cost.perf_conv [--quick]`.

Three parts, on CPU and (when present) CUDA, forward + backward (gradients of the input and
of every parameter), layers in training mode:

1. sweep: `conv` (3 taps / 3 x 3), `ckconv` and `flexconv` (mask at its initial width) at
   sequence lengths 1k-16k (30 -> 30 channels) and image sizes 32^2-128^2 (36 -> 36),
   batch 8; median time and peak memory -> results/perf/conv_<device>.csv and .png.
2. FFT cost model: conv_fft against conv_direct on a grid of shapes; the ratio of their
   times per unit of methods.functional's cost estimates is the FFT_COST that `prefer_fft`
   uses -> results/perf/fft_cost_<device>.csv.
3. targets: the configurations of issue 3 at batch 32, each against a plain nn.Conv1d /
   nn.Conv2d with the same kernel size timed in the same run, interleaved (ours, plain, ours,
   ...; median of 11 each): the reference point every implementation has on the machine at
   hand. At FlexConv's initial 5 x 5 the convolution itself is most of the layer's time, so the
   target there is at most 1.15x the plain conv -> results/perf/targets_<device>.csv. (The
   authors' layers are not vendored here; README quotes the side-by-side measurement against
   them, with its setup.)

Every row records wall-clock times and, on CPU, the process's CPU time per run, with the
load average: on a shared machine the wall clock of a multi-threaded run is mostly waiting
(a parallel region ends with its slowest thread), while the CPU time of a 1-thread run
(`--threads 1`) still measures the work. Peak memory: on CUDA the allocator's peak; on CPU
the growth of the peak resident set (VmHWM, reset through /proc/self/clear_refs), with
glibc's mmap threshold pinned so freed buffers leave the resident set at once. `--quick`
keeps the sizes small (under 3 minutes on 2 idle cores).
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import os
import re
import statistics
import time
from pathlib import Path

import torch

from methods import get_method
from methods.functional import FFT_COST, conv_direct, conv_fft, direct_cost, fft_cost, prefer_fft

OUT = Path("results/perf")
# issue 3's configurations, forward + backward with the input's gradient, batch 32
TARGETS = [
    # name, method, dim, size, channels, mask width (None: initial), target ratio to the plain conv (or None)
    ("flexconv 2D 33-grid, 32x32, initial mask", "flexconv", 2, (32, 32), 36, None, 1.15),
    ("flexconv 2D 33-grid, 32x32, sigma=0.3", "flexconv", 2, (32, 32), 36, 0.3, None),
    ("flexconv 1D causal, L=1024", "flexconv", 1, 1024, 30, None, None),
    ("ckconv 1D causal SIREN, L=1024", "ckconv", 1, 1024, 30, None, None),
]
INTERLEAVED = 11  # runs of each side, alternating


class PeakMemory:
    """Peak memory of a block, in MiB, above what was allocated when it started."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cpu":
            try:  # M_MMAP_THRESHOLD: big buffers are mmapped and returned to the OS on free
                ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 16)
                Path("/proc/self/clear_refs").write_text("5")
                self.supported = True
            except OSError:
                self.supported = False

    @staticmethod
    def _status(key: str) -> int:
        return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        elif self.supported:
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # free heap pages would hide new allocations
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.base = self._status("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.mib = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.mib = (self._status("VmHWM") - self.base) / 1024 if self.supported else float("nan")


class Timings:
    """Wall-clock and CPU milliseconds of forward + backward runs."""

    def __init__(self, fn, x: torch.Tensor, reps: int, warmup: int):
        self.wall, self.cpu = [], []
        for i in range(warmup + reps):
            _sync(x.device)
            wall, cpu = time.perf_counter(), time.process_time()
            y = fn(x)
            y.backward(torch.ones_like(y))
            _sync(x.device)
            if i >= warmup:
                self.wall.append(1000 * (time.perf_counter() - wall))
                self.cpu.append(1000 * (time.process_time() - cpu))
            x.grad = None
            if isinstance(fn, torch.nn.Module):
                fn.zero_grad(set_to_none=True)

    def summary(self, prefix: str = "") -> dict:
        return {
            f"{prefix}ms_mean": round(statistics.mean(self.wall), 2),
            f"{prefix}ms_median": round(statistics.median(self.wall), 2),
            f"{prefix}ms_min": round(min(self.wall), 2),
            f"{prefix}cpu_ms_median": round(statistics.median(self.cpu), 2),
        }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_mib(fn, x: torch.Tensor) -> float:
    with PeakMemory(x.device) as mem:
        y = fn(x)
        y.backward(torch.ones_like(y))
        del y
    x.grad = None
    return mem.mib


def context(device: torch.device) -> dict:
    return dict(device=device.type, threads=torch.get_num_threads(), load_avg=round(os.getloadavg()[0], 2))


def make_layer(method: str, dim: int, size, channels: int, device, mask_width: float | None = None):
    kwargs = {"kernel_size": 3} if method == "conv" else {}
    layer = get_method(method).obj(channels, channels, dim=dim, causal=dim == 1, size=size, **kwargs).to(device)
    if mask_width is not None:
        with torch.no_grad():
            layer.mask_width.fill_(mask_width)
    return layer.train()


def layer_info(layer, x: torch.Tensor) -> tuple[str, str]:
    """(kernel taps as 'k' or 'kxk', path 'fft' / 'direct') for the layer's current kernel."""
    if hasattr(layer, "sample_kernel"):
        with torch.no_grad():
            w = layer.sample_kernel()
    else:
        w = layer.conv.weight
    path = "fft" if prefer_fft(x.shape, w.shape, x.dim() == 3) else "direct"
    return "x".join(str(k) for k in w.shape[2:]), path


def sweep(device: torch.device, quick: bool) -> list[dict]:
    lengths = [1024, 4096] if quick else [1024, 2048, 4096, 8192, 16384]
    sides = [32, 64] if quick else [32, 64, 96, 128]
    reps, warmup, batch = (3, 1, 8) if quick else (5, 2, 8)
    rows = []
    cases = [(1, n, 30) for n in lengths] + [(2, (s, s), 36) for s in sides]
    for dim, size, channels in cases:
        shape = (batch, channels, size) if dim == 1 else (batch, channels, *size)
        x = torch.randn(shape, device=device, requires_grad=True)
        for method in ("conv", "ckconv", "flexconv"):
            torch.manual_seed(0)
            layer = make_layer(method, dim, size, channels, device)
            kernel, path = layer_info(layer, x)
            t = Timings(layer, x, reps, warmup)
            row = dict(
                **context(device), method=method, dim=dim, size=size if dim == 1 else size[0], batch=batch,
                channels=channels, kernel=kernel, path=path, **t.summary(),
            )  # fmt: skip
            rows.append(row)
            print(f"  {method:9s} {dim}D size {row['size']:>6}: kernel {kernel:>9} ({path:6s}) "
                  f"{row['ms_median']:9.1f} ms (cpu {row['cpu_ms_median']:9.1f})", flush=True)  # fmt: skip
    return rows


def sweep_memory(device: torch.device, rows: list[dict]) -> None:
    """Add the peak memory to the sweep's rows. Run after all timings: pinning glibc's mmap
    threshold makes every later large allocation fault its pages in afresh."""
    for row in rows:
        dim, size = row["dim"], row["size"] if row["dim"] == 1 else (row["size"],) * 2
        torch.manual_seed(0)
        layer = make_layer(row["method"], dim, size, row["channels"], device)
        shape = (row["batch"], row["channels"], *((size,) if dim == 1 else size))
        row["peak_mib"] = round(peak_mib(layer, torch.randn(shape, device=device, requires_grad=True)), 1)
        print(f"  {row['method']:9s} {dim}D size {row['size']:>6}: {row['peak_mib']:8.1f} MiB", flush=True)


def fft_calibration(device: torch.device, quick: bool) -> list[dict]:
    """Time both paths per unit of their cost estimates; their ratio is the fitted FFT_COST.

    The fastest of the runs stands for each path: it is the one least disturbed by other load.
    """
    shapes = [  # (x shape, kernel sides); channels in == out
        ((8, 30, 1024), (9,)), ((8, 30, 1024), (33,)), ((8, 30, 1024), (83,)), ((8, 30, 1024), (257,)),
        ((32, 30, 1024), (33,)), ((8, 30, 4096), (65,)),
        ((8, 36, 32, 32), (3, 3)), ((8, 36, 32, 32), (5, 5)), ((8, 36, 32, 32), (9, 9)),
        ((32, 36, 32, 32), (5, 5)), ((8, 36, 32, 32), (13, 13)), ((8, 36, 64, 64), (7, 7)),
        ((32, 16, 16, 16), (5, 5)), ((64, 8, 8, 8), (3, 3)), ((64, 16, 200), (9,)), ((64, 16, 200), (41,)),
    ]  # fmt: skip
    if quick:
        shapes = shapes[::2]
    rows = []
    for xs, ks in shapes:
        causal = len(xs) == 3
        x = torch.randn(xs, device=device, requires_grad=True)
        w = torch.randn(xs[1], xs[1], *ks, device=device, requires_grad=True)
        t = {}
        for name, fn in (("fft", conv_fft), ("direct", conv_direct)):
            t[name] = min(Timings(lambda v, fn=fn, w=w, causal=causal: fn(v, w, None, causal), x, 3, 1).wall)
        dc, fc = direct_cost(x.shape, w.shape), fft_cost(x.shape, w.shape, causal)
        ratio = (t["fft"] / fc) / (t["direct"] / dc)
        rows.append(dict(
            **context(device), x_shape="x".join(map(str, xs)), kernel="x".join(map(str, ks)),
            direct_ms=round(t["direct"], 2), fft_ms=round(t["fft"], 2), direct_cost=dc, fft_cost=round(fc),
            fitted_fft_cost=round(ratio, 3), chose=("fft" if prefer_fft(x.shape, w.shape, causal) else "direct"),
            faster=("fft" if t["fft"] < t["direct"] else "direct"),
        ))  # fmt: skip
        r = rows[-1]
        print(f"  x {r['x_shape']:>14} k {r['kernel']:>6}: direct {r['direct_ms']:8.1f} ms  fft {r['fft_ms']:8.1f} ms"
              f"  ratio {ratio:6.2f}  chose {r['chose']:6s} faster {r['faster']}", flush=True)  # fmt: skip
    return rows


def plain_conv(layer, x: torch.Tensor, channels: int) -> torch.nn.Module:
    """nn.Conv1d / nn.Conv2d with the kernel size `layer` uses now ('same' padding; causal in 1D by left padding)."""
    with torch.no_grad():
        ks = tuple(layer.sample_kernel().shape[2:])
    if x.dim() == 3:
        conv = torch.nn.Conv1d(channels, channels, ks[0]).to(x.device)
        return lambda v: conv(torch.nn.functional.pad(v, (ks[0] - 1, 0)))
    return torch.nn.Conv2d(channels, channels, ks, padding=(ks[0] // 2, ks[1] // 2)).to(x.device)


def targets(device: torch.device, rounds: int = INTERLEAVED) -> list[dict]:
    """Issue 3's configurations, each with a plain convolution of the same kernel size in the same run:
    `rounds` runs of each, alternating after 2 warm-ups each; medians and their ratio."""
    rows = []
    for name, method, dim, size, channels, width, target in TARGETS:
        torch.manual_seed(0)
        shape = (32, channels, size) if dim == 1 else (32, channels, *size)
        layer = make_layer(method, dim, size, channels, device, width)
        x = torch.randn(shape, device=device, requires_grad=True)
        plain = plain_conv(layer, x, channels)
        Timings(layer, x, 0, 2), Timings(plain, x, 0, 2)  # warm-ups
        ours, ref = [], []
        for _ in range(rounds):
            ours += Timings(layer, x, 1, 0).wall
            ref += Timings(plain, x, 1, 0).wall
        kernel, path = layer_info(layer, x)
        ratio = statistics.median(ours) / statistics.median(ref)
        rows.append(dict(**context(device), case=name, kernel=kernel, path=path, runs=rounds,
                         ms_median=round(statistics.median(ours), 2), plain_conv_ms_median=round(statistics.median(ref), 2),
                         ratio_to_plain_conv=round(ratio, 2), target_ratio=target,
                         met=None if target is None else ratio <= target))  # fmt: skip
        verdict = "" if target is None else f" (target <= {target}: {'met' if ratio <= target else 'NOT met'})"
        print(f"  {name:42s} {kernel:>7} ({path:6s}) {rows[-1]['ms_median']:8.1f} ms; plain conv of the same size "
              f"{rows[-1]['plain_conv_ms_median']:8.1f} ms; ratio {ratio:5.2f}{verdict}", flush=True)  # fmt: skip
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for col, dim in enumerate((1, 2)):
        for method in ("conv", "ckconv", "flexconv"):
            sel = [r for r in rows if r["dim"] == dim and r["method"] == method]
            xs = [r["size"] if dim == 1 else r["size"] ** 2 for r in sel]
            axes[0, col].plot(xs, [r["ms_median"] for r in sel], "o-", label=method)
            axes[1, col].plot(xs, [r["peak_mib"] for r in sel], "o-", label=method)
        for row, unit in enumerate(("forward + backward (ms)", "peak memory (MiB)")):
            ax = axes[row, col]
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("sequence length" if dim == 1 else "pixels")
            ax.set_ylabel(unit)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        axes[0, col].set_title(("1D causal, 30 -> 30 ch" if dim == 1 else "2D, 36 -> 36 ch") + ", batch 8")
    load = statistics.mean(r["load_avg"] for r in rows)
    fig.suptitle(f"{rows[0]['device']}: {rows[0]['threads']} threads, torch {torch.__version__}, load avg {load:.1f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repetitions (< 3 min on 2 cores)")
    parser.add_argument("--device", choices=["cpu", "cuda"], action="append", help="default: cpu, and cuda if present")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    parser.add_argument("--targets", action="store_true", help="only part 3, the targets (about a minute)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for name in devices:
        device = torch.device(name)
        if args.targets:
            print(f"[{name}] targets of issue 3 (batch 32, {INTERLEAVED} interleaved runs against a plain conv)")
            write_csv(args.out / f"targets_{name}.csv", targets(device))
            continue
        print(f"[{name}] sweep", flush=True)
        rows = sweep(device, args.quick)
        print(f"[{name}] FFT cost model", flush=True)
        cal = fft_calibration(device, args.quick)
        write_csv(args.out / f"fft_cost_{name}.csv", cal)
        agree = sum(r["chose"] == r["faster"] for r in cal)
        for dim in (1, 2):
            fitted = statistics.median(r["fitted_fft_cost"] for r in cal if r["x_shape"].count("x") == dim + 1)
            print(f"  {dim}D: fitted FFT_COST (median) {fitted:.2f}, in use {FFT_COST[dim]}", flush=True)
        print(f"  prefer_fft picked the faster path in {agree}/{len(cal)} shapes", flush=True)
        rounds = 3 if args.quick else INTERLEAVED
        print(f"[{name}] targets of issue 3 (batch 32, {rounds} interleaved runs against a plain conv)", flush=True)
        write_csv(args.out / f"targets_{name}.csv", targets(device, rounds))
        print(f"[{name}] peak memory of the sweep", flush=True)
        sweep_memory(device, rows)
        write_csv(args.out / f"conv_{name}.csv", rows)
        plot(args.out / f"conv_{name}.png", rows)
    print(f"wrote {args.out}/", flush=True)


if __name__ == "__main__":
    main()
