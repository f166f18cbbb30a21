"""The GPU fast path: CUDA settings that make training faster without changing what a run means.

On CUDA only (on CPU nothing changes), per run:
- TF32 for float32 matmuls and convolutions (bf16 autocast is the protocol's, train.amp);
- cudnn.benchmark only where shapes are fixed: a method that learns its kernel size changes its
  shapes during training (card.learned_size), and benchmarking would re-tune at every change;
  never with train.deterministic;
- the small in-memory datasets (TensorDatasets, up to DATA_ON_GPU_MAX_BYTES and a quarter of
  the free GPU memory) are copied to the GPU once per run, so batches are sliced there;
- with `--compile` (environment LKSBENCH_COMPILE=1, so worker processes and cluster jobs see it
  too), torch.compile for methods with fixed shapes.

The settings used are returned and stored in the run record under "fastpath".
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import TensorDataset

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
    from methods import card_of

    fixed_shapes = not card_of(cfg.method).learned_size
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = fixed_shapes and not cfg.train.deterministic
    torch.backends.cudnn.deterministic = cfg.train.deterministic
    data, on_gpu = data_on_device(data, device) if data is not None else (data, False)
    compiled = os.environ.get("LKSBENCH_COMPILE") == "1" and fixed_shapes
    if compiled:
        model.compile()  # in place: parameter names, hooks and checkpoints stay as they are
    settings = {"tf32": True, "cudnn_benchmark": torch.backends.cudnn.benchmark, "data_on_gpu": on_gpu,
                "compiled": compiled}  # fmt: skip
    return model, data, settings
