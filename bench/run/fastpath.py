"""The GPU fast path: CUDA settings that make training faster without changing what a run means.

On CUDA only (on CPU nothing changes), per run:
- TF32 for float32 matmuls and convolutions (bf16 autocast is the protocol's, train.amp);
- cudnn.benchmark only where shapes are fixed: a method that learns its kernel size changes its
  shapes during training (card.learned_size), and benchmarking would re-tune at every change;
  never with train.deterministic;
- the small in-memory datasets (TensorDatasets, up to DATA_ON_GPU_MAX_BYTES and a quarter of
  the free GPU memory) are copied to the GPU once per run, so batches are sliced there;
- train.compile (`--compile`, part of the run's configuration): the training step's forward and
  backward through torch.compile. "graph" is mode="reduce-overhead": inductor's kernels replayed as
  CUDA graphs, so a step is a few graph launches instead of thousands of kernel launches; "model" is
  inductor without CUDA graphs; "off" is eager; "auto" (default) is "graph" on CUDA for a model
  whose shapes are fixed or bucketed (`compilable`), else "off" (always "off" on the CPU). Only the
  training step is compiled: evaluation runs the same modules eagerly. A layer whose shapes follow
  its parameters declares `variable_shape = True`; if it also has `bucket_shapes(on)`, compiling
  turns bucketing on (FlexConv: the sampled crop rounds up to a bucket and the extra taps are
  exactly zero), so the step recompiles only when a size crosses a bucket.
  The optimizer is torch's fused AdamW, already a few kernels a step.

The settings used are returned and stored in the run record under "fastpath" (and "compile").
"""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from methods import card_of

DATA_ON_GPU_MAX_BYTES = 4 * 2**30


def _tensor_bytes(dataset) -> int:
    return sum(t.numel() * t.element_size() for t in dataset.tensors) if isinstance(dataset, TensorDataset) else 0


def data_on_device(data, device: str):
    """The splits with every in-memory split on `device` when they all fit; otherwise unchanged."""
    splits = [data.train, data.val, data.test]
    if not all(isinstance(s, TensorDataset) for s in splits):
        return data, False
    size = sum(_tensor_bytes(s) for s in splits)
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    if size > min(DATA_ON_GPU_MAX_BYTES, free // 4):
        return data, False
    moved = [TensorDataset(*(t.to(device) for t in s.tensors)) for s in splits]
    return data._replace(train=moved[0], val=moved[1], test=moved[2]), True


def prepare(cfg, model, data, device: str):
    """Apply the fast path for one run: returns (model, data, settings)."""
    if torch.device(device).type != "cuda":
        return model, data, {}
    fixed_shapes = not card_of(cfg.method).learned_size
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = fixed_shapes and not cfg.train.deterministic
    torch.backends.cudnn.deterministic = cfg.train.deterministic
    data, on_gpu = data_on_device(data, device) if data is not None else (data, False)
    settings = {"tf32": True, "cudnn_benchmark": torch.backends.cudnn.benchmark, "data_on_gpu": on_gpu,
                "compile": compile_mode(cfg.train.compile, device, model, cfg.train.deterministic)}  # fmt: skip
    return model, data, settings


RECOMPILE_LIMIT = 64  # compiled variants kept per frame: a bucketed model meets a few dozen shapes in a run


def variable_shapes(model) -> list[str]:
    """The modules of `model` whose shapes follow their parameters (`variable_shape = True`), by name."""
    return [name for name, m in model.named_modules() if getattr(m, "variable_shape", False)]


def compilable(model) -> bool:
    """Whether a compiled step keeps its shapes, up to buckets: every variable-shape module can bucket."""
    return all(callable(getattr(m, "bucket_shapes", None)) for m in model.modules() if getattr(m, "variable_shape", 0))


def compile_mode(requested: str, device: str, model, deterministic: bool = False) -> str:
    """train.compile resolved for this run: auto is graph on CUDA for a compilable model (and a run that does
    not ask for deterministic algorithms, which generated kernels do not promise), else off."""
    if requested != "auto":
        return requested
    return "graph" if torch.device(device).type == "cuda" and compilable(model) and not deterministic else "off"


def train_forward(model, mode: str, backend=None):
    """The forward the training step calls: `model` itself ("off"), or its compiled form sharing its
    parameters. Turns shape bucketing on in the layers that have it (they then stay bucketed).
    `backend`: torch.compile's (tests pass a counting one; default inductor)."""
    if mode == "off":
        return model
    for m in model.modules():
        if callable(getattr(m, "bucket_shapes", None)):
            m.bucket_shapes(True)
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, RECOMPILE_LIMIT)
    options = {"backend": backend} if backend is not None else {"mode": "reduce-overhead" if mode == "graph" else None}
    compiled = torch.compile(model, **options)
    if mode != "graph":
        return compiled
    mark = getattr(torch.compiler, "cudagraph_mark_step_begin", None)

    def forward(x):
        if mark is not None:
            mark()  # a new training step: the CUDA graphs' previous outputs may be overwritten
        return compiled(x)

    return forward
