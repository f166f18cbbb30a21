"""A snapshot of the learned continuous kernels and masks at the end of training, for the report's images.

A post-training step (runner.post_train). For every module that samples its own kernel
(`sample_kernel()`: CKConv, FlexConv and their variants) it stores, per layer, the kernel of
the first (output, input) channel pair and, for modules with a mask (`envelope()` over their
`grid`), the mask on the whole grid, i.e. the largest kernel the layer could use. Arrays are
float16, base64 in the run file, thinned to at most MAX_SIDE points per axis, so that a
FlexNet-7 adds about 100 kB.
"""

from __future__ import annotations

import base64
import math

import numpy as np

MAX_SIDE = {1: 1024, 2: 64}


def encode(array: np.ndarray) -> dict:
    """A small array as {"shape", "stride", "float16"}: thinned by a stride per axis, float16, base64."""
    stride = [max(1, math.ceil(n / MAX_SIDE[array.ndim])) for n in array.shape]
    thin = np.ascontiguousarray(array[tuple(slice(None, None, s) for s in stride)], dtype="<f2")
    return {"shape": list(thin.shape), "stride": stride, "float16": base64.b64encode(thin.tobytes()).decode()}


def decode(item: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(item["float16"]), dtype="<f2").reshape(item["shape"]).astype(np.float32)


def snapshot(model) -> dict[str, dict]:
    """{layer name: {"kernel": encoded, "mask": encoded (if any)}} for every kernel-sampling module."""
    import torch

    out = {}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for name, module in model.named_modules():
            if not callable(getattr(module, "sample_kernel", None)):
                continue
            kernel = module.sample_kernel()
            entry = {"kernel": encode(kernel[0, 0].float().cpu().numpy()), "causal": bool(getattr(module, "causal", 0))}
            grid, envelope = getattr(module, "grid", None), getattr(module, "envelope", None)
            if grid is not None and callable(envelope):
                axes = [torch.linspace(-1.0, 1.0, k, device=kernel.device) for k in grid]
                mask = envelope(axes)
                if mask is not None:
                    entry["mask"] = encode(mask.float().cpu().numpy())
            out[name or "model"] = entry
    model.train(was_training)
    return out


def add_kernel_snapshot(cfg, model, data, record: dict, device: str) -> None:
    """a post-training step (runner.post_train): record["kernel_snapshot"] for models with continuous kernels."""
    shots = snapshot(model)
    if shots:
        record["kernel_snapshot"] = shots
