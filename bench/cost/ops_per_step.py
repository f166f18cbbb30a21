"""`python -m bench.cost.ops_per_step`: aten ops and host reads in one training step of every method.

Every aten op costs the host a few microseconds of dispatch, most launch a kernel on a GPU, and every host
read (`item`, `tolist`, `bool(tensor)`, a copy to the CPU) stalls the queue until the GPU catches up; a small
model's eager step is bound by them, not by arithmetic (../shared/measurements/2026-12-04-h200/README.md).
Both are counted here on the CPU, which sees the same ops, for one step of the protocol's update (forward,
loss, regularisers, backward, AdamW step, post-step hooks), on the two networks of the FlexConv papers that
every layer method plugs into: FlexNet-7 on 32 x 32 images and FlexTCN-6 on 1024-step sequences. The step
counted is the second one (the first fills the layers' caches).

Writes `results/perf/ops_per_step.csv`, one row per method and network, with for a count named by
`--column` (so that counts before and after a change sit side by side):
  ops_<col>           all aten ops of the step
  launching_<col>     those that launch a kernel (not views such as `view`/`permute`/`detach`/`_conj`, not
                      allocations, not profiler markers)
  in_fft_<col>        those inside the FFT convolution's forward and backward
  free_kernels_<col>  the same step with every layer's kernel precomputed (the kernel bank's output given):
                      what it would cost if sampling the kernels cost nothing, a floor for any change that
                      keeps the rest of the layers and the network
  host_reads_<col>    host reads, in the step and in the post-step hooks
and, if matplotlib is there, `ops_per_step.png`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import sys
from collections import Counter
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import methods
from bench.run.config import TrainConfig
from bench.run.protocol import TrainStep, make_optimizer
from methods import functional, kernelbank
from methods.task import TaskSpec

# network: (task, the backbone's hparams, batch size)
NETWORKS = {
    "flexnet7-32px": (TaskSpec(2, 3, 10, (32, 32)), {"arch": "flexnet7"}, 4),
    "flextcn6-1024": (TaskSpec(1, 3, 10, 1024, causal=True), {"arch": "flextcn6"}, 4),
}
# the same backbones scaled down, for tests
SMALL_NETWORKS = {
    "flexnet3-8px": (TaskSpec(2, 3, 10, (8, 8)), {"arch": "flexnet3", "width": 4}, 2),
    "flextcn2-32": (TaskSpec(1, 3, 10, 32, causal=True), {"arch": "flextcn2", "width": 4}, 2),
    "mnist1d-40": (TaskSpec(1, 1, 10, 40), {"arch": "flextcn2", "width": 4}, 2),  # non-causal: the MNIST-1D models
}
# Python-level calls that copy a tensor's value to the host (on a GPU: a synchronisation)
HOST_READ_FUNCTIONS = {
    "item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__", "__array__",
}  # fmt: skip
# aten ops that return a Python value computed from a tensor's data
HOST_READ_OPS = {"_local_scalar_dense", "is_nonzero", "equal", "allclose"}


class HostReads(TorchFunctionMode):
    """Records every Python-level call that reads a tensor's value back to the host."""

    def __init__(self):
        super().__init__()
        self.reads: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READ_FUNCTIONS:
            self.reads[name] += 1
        elif name == "to" and _to_cpu(args[1:], kwargs or {}) and args[0].device.type != "cpu":
            self.reads["to(cpu)"] += 1
        return func(*args, **(kwargs or {}))


def _to_cpu(args, kwargs) -> bool:
    target = kwargs.get("device", args[0] if args else None)
    return isinstance(target, (str, torch.device)) and torch.device(target).type == "cpu"


# aten ops that launch no kernel on a GPU though they are not views: allocations and the profiler's markers
NO_KERNEL_OPS = {"empty", "empty_strided", "new_empty_strided", "_record_function_enter_new", "_record_function_exit"}


@functools.cache
def launches_kernel(func) -> bool:
    """Whether an aten op does work on the device: not a view (its result aliases an input: `view`, `permute`,
    `detach`, `_conj`, ...), not an allocation or a profiler marker."""
    if func.overloadpacket.__name__ in NO_KERNEL_OPS:
        return False
    aliases = [r.alias_info for r in func._schema.returns]
    return not any(a is not None and not a.is_write for a in aliases)


class AtenOps(TorchDispatchMode):
    """Counts the aten ops the dispatcher runs, by name; those that launch a kernel on a GPU; and those run inside
    the FFT convolution (`inside_fft` > 0), forward and backward."""

    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()
        self.launching = self.in_fft = self.inside_fft = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        self.launching += launches_kernel(func)
        self.in_fft += self.inside_fft > 0
        return func(*args, **(kwargs or {}))

    @property
    def host_reads(self) -> int:
        return sum(n for name, n in self.ops.items() if name in HOST_READ_OPS)


def build(method: str, network: str, seed: int = 0):
    """The method in `network` (or its own model, for a whole-model method), its optimizer, hooks and a batch."""
    task, backbone, batch = {**NETWORKS, **SMALL_NETWORKS}[network]
    accepted = methods.accepted_hparams(method)
    hp = {k: v for k, v in backbone.items() if accepted is None or k in accepted}
    torch.manual_seed(seed)
    model = methods.build_model(method, task, **hp)
    model.train()
    tc = TrainConfig(lr=1e-3)
    x = torch.randn(batch, *task.input_shape)
    y = torch.randint(0, task.num_classes, (batch,))
    return TrainStep(model, make_optimizer(model, tc), tc, "cpu", task.metric), x, y


def count(method: str, network: str) -> dict:
    """Aten ops and host reads in the second training step of `method` on `network`: in the update (forward,
    backward, optimizer step) and in the post-step hooks (where one batched copy of the sizes may be)."""
    step, x, y = build(method, network)
    step(x, y)
    with HostReads() as reads, AtenOps() as ops, _watching_fft(ops):
        step.update(x, y)
    with HostReads() as post_reads, AtenOps() as post_ops:
        step.hooks.post_step()
    kinds = Counter(reads.reads) + Counter(post_reads.reads)
    kinds.update({name: n for o in (ops, post_ops) for name, n in o.ops.items() if name in HOST_READ_OPS})
    return {
        "ops": sum(ops.ops.values()) + sum(post_ops.ops.values()),
        "step_reads": max(sum(reads.reads.values()), ops.host_reads),
        "post_step_reads": max(sum(post_reads.reads.values()), post_ops.host_reads),
        "read_kinds": " ".join(f"{k}:{v}" for k, v in sorted(kinds.items())),
        "launching": ops.launching + post_ops.launching,
        "in_fft": ops.in_fft,
        "by_op": ops.ops + post_ops.ops,
    }


class _Given(torch.autograd.Function):
    """A precomputed kernel in place of a sampled one: it asks for its gradient as a sampled kernel does (so the
    convolution's backward runs in full) and passes it nowhere."""

    @staticmethod
    def forward(ctx, anchor: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        return kernel.view_as(kernel)  # one view op per kernel, taken off the count

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None


def free_kernels(method: str, network: str) -> int | None:
    """Aten ops of the same step with every layer's kernel precomputed: what the step would cost if the kernels
    cost nothing to sample, forward and backward. A floor for any kernel parameterisation that keeps the rest
    of the layer (its convolutions, norms, mixing) and the network. None where some layer does not take its
    kernel from a network's kernel bank (methods/kernelbank.py)."""
    step, x, y = build(method, network)
    step(x, y)
    samplers = [m for m in step.model.modules() if callable(getattr(m, "sample_kernel", None))]
    if not samplers or any(m.__dict__.get("_bank") is None for m in samplers):
        return None
    banks = {id(m.__dict__["_bank"]): m.__dict__["_bank"] for m in samplers}
    with torch.no_grad():
        given = {key: {i: k.detach() for i, k in bank._compute().items()} for key, bank in banks.items()}
    anchor = torch.zeros((), requires_grad=True)
    handed = [0]

    def precomputed(bank):
        handed[0] += len(given[id(bank)])
        return {i: _Given.apply(anchor, k) for i, k in given[id(bank)].items()}

    saved = kernelbank.KernelBank._compute
    kernelbank.KernelBank._compute = precomputed
    try:
        with AtenOps() as ops:
            step.update(x, y)
            step.hooks.post_step()
    finally:
        kernelbank.KernelBank._compute = saved
    return sum(ops.ops.values()) - handed[0]


@contextlib.contextmanager
def _watching_fft(ops: AtenOps):
    """Marks the ops run inside the FFT convolution's forward and backward (functional._FFTConv) for `ops`."""
    cls = functional._FFTConv
    saved = cls.__dict__["forward"], cls.__dict__["backward"]

    def watched(fn):
        def run(*args, **kwargs):
            ops.inside_fft += 1
            try:
                return fn(*args, **kwargs)
            finally:
                ops.inside_fft -= 1

        return staticmethod(run)

    cls.forward, cls.backward = watched(saved[0].__func__), watched(saved[1].__func__)
    try:
        yield
    finally:
        cls.forward, cls.backward = saved


def applicable(method: str, network: str, small: bool = False) -> bool:
    return methods.skip_reason(method, (SMALL_NETWORKS if small else NETWORKS)[network][0]) is None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cost.ops_per_step", description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default="*", help="comma-separated names or patterns (default: all)")
    parser.add_argument("--out", default="results/perf/ops_per_step.csv")
    parser.add_argument("--column", default="now", help="name of this count's columns (ops_<column>, ...)")
    parser.add_argument("--top", type=int, default=0, help="also print the N most frequent ops of each row")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    names = methods.METHODS.select(args.methods.split(","))
    path = Path(args.out)
    rows = {}
    if path.exists():  # keep the other columns (e.g. the count before a change)
        with path.open() as f:
            rows = {(r["method"], r["network"]): r for r in csv.DictReader(f)}
    for network in NETWORKS:
        for m in names:
            if not applicable(m, network):
                continue
            c = count(m, network)
            row = rows.setdefault((m, network), {"method": m, "network": network})
            reads = c["step_reads"] + c["post_step_reads"]
            floor = free_kernels(m, network)
            floor = "" if floor is None else floor
            row.update({f"ops_{args.column}": c["ops"], f"host_reads_{args.column}": reads})
            row.update({f"launching_{args.column}": c["launching"], f"in_fft_{args.column}": c["in_fft"],
                        f"free_kernels_{args.column}": floor})  # fmt: skip
            print(
                f"{network:<14} {m:<18} {c['ops']:>6} ops ({c['launching']:>5} launch a kernel, {c['in_fft']:>4} in "
                f"FFT convolutions, {floor or '-':>5} with free kernels) {c['step_reads']:>3} host reads in the "
                f"step, {c['post_step_reads']} after it  {c['read_kinds']}"
            )
            if args.top:
                print("    " + ", ".join(f"{k} {v}" for k, v in c["by_op"].most_common(args.top)))
    columns = ["method", "network"]
    for r in rows.values():
        columns += [k for k in r if k not in columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(sorted(rows.values(), key=lambda r: (r["network"], r["method"])))
    print(f"-> {path}")
    plot(list(rows.values()), path.with_suffix(".png"))
    return 0


def plot(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    cols = [k for k in rows[0] if k.startswith("ops_")] if rows else []
    if not cols:
        return
    fig, axes = plt.subplots(1, len(NETWORKS), figsize=(12, 6), squeeze=False)
    for ax, network in zip(axes[0], NETWORKS):
        sub = sorted((r for r in rows if r["network"] == network), key=lambda r: r["method"])
        height = 0.8 / len(cols)
        for i, col in enumerate(cols):
            vals = [float(r.get(col) or 0) for r in sub]
            ax.barh([j + i * height for j in range(len(sub))], vals, height, label=col[4:])
        ax.set_yticks([j + 0.4 - height / 2 for j in range(len(sub))], [r["method"] for r in sub], fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("aten ops per training step (CPU count, batch 4)")
        ax.set_title(network)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
