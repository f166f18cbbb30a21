"""What a trained model costs: parameters, FLOPs per sample, peak memory. Added to every run file.

Runs as a post-training step (runner.post_train), so it sees the model at the end of
training: kernel sizes learned during training are the ones counted. A failure here never
fails the run: the error goes into the record as `cost_error`.

Training speed is not measured here: the protocol's `train_time_s`, `epoch_time_s` and
`throughput_train_samples_s` are the one source of those numbers.

Parameters
- `params`: every trainable parameter (recorded by the protocol).
- `params_weights`: the same without the parameters that only set a kernel's size, shape or
  position (sigma, DCLS positions, FlexConv's mask). A module names those through an optional
  `size_parameters()` hook returning its own such parameters; a module without that hook has
  them taken from its `param_groups` hook, since every method gives sigma, positions and masks
  their own optimizer group. `params_weights_rule` says which rule applied.

FLOPs (torch.utils.flop_counter.FlopCounterMode, one sample at the test set's input size)
- `flops_fwd`: forward; `flops_fwdbwd`: forward + backward to the parameters, as in training.
- Counted: matmuls, convolutions, attention (torch's formulas); the FFT ops, deform_conv2d and
  grid_sampler_2d (formulas below); complex matmuls at 4 real multiply-adds each. Elementwise
  ops count zero, as in torch's counter. A kernel generated in the forward pass (continuous
  kernels) is counted once per forward, i.e. per sample at batch size 1.
- `flops_source` names the counter and the extra formulas that contributed.
"""

from __future__ import annotations

import math
import re
import resource
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.utils import flop_counter

from methods.hooks import size_parameters

aten = torch.ops.aten

# -- extra FLOP formulas -------------------------------------------------------------------------
# FFT: the benchFFT convention (FFTW's "mflops"): 5 N log2 N per complex transform of N points,
# half that for a real one; a multi-dimensional transform has N = the product of its sizes.


def _fft_flops(shape, dims, per_point: float) -> int:
    n = math.prod(shape[d] for d in dims)
    if n <= 1:
        return 0
    transforms = math.prod(shape) // n
    return round(per_point * transforms * n * math.log2(n))


def fft_r2c_flop(x_shape, dim, *args, out_shape=None, **kwargs) -> int:
    return _fft_flops(x_shape, dim, 2.5)


def fft_c2r_flop(x_shape, dim, *args, out_shape=None, **kwargs) -> int:
    return _fft_flops(out_shape, dim, 2.5)  # N is the real (output) length


def fft_c2c_flop(x_shape, dim, *args, out_shape=None, **kwargs) -> int:
    return _fft_flops(x_shape, dim, 5.0)


# deform_conv2d: the convolution of the sampled columns (2 FLOPs per multiply-add, as torch counts
# convolutions) plus bilinear sampling, 7 FLOPs per sampled value (4 multiplies, 3 adds) and one
# more for the modulation mask. Backward: twice the convolution (input and weight gradients) and
# three times the sampling (re-sampling, scattering to the input, offset and mask gradients).
BILINEAR_FLOPS = 7


def _deform_parts(x_shape, w_shape, use_mask: bool, out_shape) -> tuple[int, int]:
    batch, cin = x_shape[0], x_shape[1]
    cout, cin_per_group, kh, kw = w_shape
    positions = batch * out_shape[-2] * out_shape[-1]
    conv = 2 * positions * cout * cin_per_group * kh * kw
    sampling = positions * cin * kh * kw * (BILINEAR_FLOPS + int(bool(use_mask)))
    return conv, sampling


def deform_conv2d_flop(x_shape, w_shape, offset, mask, bias, *args, out_shape=None, **kwargs) -> int:
    conv, sampling = _deform_parts(x_shape, w_shape, args[-1] if args else True, out_shape)
    return conv + sampling


def deform_conv2d_backward_flop(grad_shape, x_shape, w_shape, offset, mask, bias, *args, out_shape=None, **kw) -> int:
    conv, sampling = _deform_parts(x_shape, w_shape, args[-1] if args else True, grad_shape)
    return 2 * conv + 3 * sampling


def grid_sampler_2d_flop(x_shape, grid_shape, *args, out_shape=None, **kwargs) -> int:
    return math.prod(out_shape) * BILINEAR_FLOPS  # bilinear; nearest is over-counted, bicubic under


def grid_sampler_2d_backward_flop(grad_shape, x_shape, grid_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * math.prod(grad_shape) * BILINEAR_FLOPS  # input and grid gradients


def _complex_aware(op):
    """torch's matmul formula, times 4 when the operands are complex (4 real multiply-adds each)."""
    base = flop_counter.flop_registry[op]

    def formula(*args, out_val=None, **kwargs):
        flops = base(*args, out_val=out_val, **kwargs)
        complex_args = any(isinstance(a, torch.Tensor) and a.is_complex() for a in args)
        return 4 * flops if complex_args else flops

    formula._get_raw = True  # receive tensors, not shapes, to see the dtype (torch >= 2.5; else real count)
    return formula


def _extra_formulas() -> dict:
    formulas = {
        aten._fft_r2c: fft_r2c_flop,
        aten._fft_c2r: fft_c2r_flop,
        aten._fft_c2c: fft_c2c_flop,
        aten.grid_sampler_2d: grid_sampler_2d_flop,
        aten.grid_sampler_2d_backward: grid_sampler_2d_backward_flop,
        **{op: _complex_aware(op) for op in (aten.mm, aten.bmm, aten.addmm, aten.baddbmm)},
    }
    if "torchvision" in sys.modules:  # a model using its ops has imported it; importing it here costs seconds
        formulas[torch.ops.torchvision.deform_conv2d] = deform_conv2d_flop
        formulas[torch.ops.torchvision._deform_conv2d_backward] = deform_conv2d_backward_flop
    return formulas


SOURCE_TAGS = {"_fft_r2c": "fft", "_fft_c2r": "fft", "_fft_c2c": "fft", "deform_conv2d": "deform_conv2d",
               "_deform_conv2d_backward": "deform_conv2d", "grid_sampler_2d": "grid_sample",
               "grid_sampler_2d_backward": "grid_sample"}  # fmt: skip


def _source(ops: dict[str, int]) -> str:
    tags = sorted({SOURCE_TAGS[name] for name, n in ops.items() if n and name in SOURCE_TAGS})
    return "+".join(["flop_counter", *tags])


def count_flops(model: nn.Module, sample: torch.Tensor, backward: bool = False) -> tuple[int, dict[str, int]]:
    """FLOPs of one forward (and, with `backward`, the backward to the parameters) on `sample`.

    Returns the total and the count per op name. The model is put in eval mode for the count
    (dropout off, normalisation statistics untouched) and restored; gradients are cleared.
    """
    was_training = model.training
    model.eval()
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=_extra_formulas())
    # count the eager ops, also for a model compiled by the fast path (--compile)
    eager = torch.compiler.set_stance("force_eager") if hasattr(torch.compiler, "set_stance") else nullcontext()
    try:
        with eager, counter, torch.set_grad_enabled(backward):
            out = model(sample)
            if backward:
                out = out[0] if isinstance(out, (tuple, list)) else out
                out.float().sum().backward()
    finally:
        model.train(was_training)
        if backward:
            model.zero_grad(set_to_none=True)
    ops: dict[str, int] = {}
    for op, n in counter.get_flop_counts().get("Global", {}).items():
        name = str(op).rsplit(".", 1)[-1]
        ops[name] = ops.get(name, 0) + int(n)
    return sum(ops.values()), ops


# -- parameters ----------------------------------------------------------------------------------


def parameter_counts(model: nn.Module) -> dict:
    structural, rule = size_parameters(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return {
        "params_total": sum(p.numel() for p in model.parameters()),
        "params_weights": sum(p.numel() for p in trainable if id(p) not in structural),
        "params_weights_rule": rule,
    }


# -- memory --------------------------------------------------------------------------------------


def _status_mb(field: str) -> float | None:
    """A `Vm...` line of /proc/self/status in MiB (Linux), else None."""
    try:
        match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


_rss_at_start: float | None = None


def _trim_heap() -> None:
    """Hand memory freed by earlier runs back to the OS (glibc), so a run's own peak shows above the start."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_memory(device: str) -> None:
    """Start a run's peak-memory window: CUDA's allocator peak, and the peak RSS where Linux allows it."""
    global _rss_at_start
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _trim_heap()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        _rss_at_start = _status_mb("VmRSS")
    except OSError:
        _rss_at_start = None


def peak_cpu_memory() -> tuple[float, str, float | None]:
    """(peak resident memory of this process in MiB, over which window, MiB the run added to the RSS it started at)."""
    hwm = _status_mb("VmHWM")
    if hwm is not None and _rss_at_start is not None:
        return hwm, "since run start (VmHWM)", max(0.0, hwm - _rss_at_start)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (2**20 if sys.platform == "darwin" else 1024), "process lifetime (ru_maxrss)", None


# -- the post-training step ----------------------------------------------------------------------


def add_cost(cfg, model: nn.Module, data, record: dict, device: str) -> None:
    """a post-training step (runner.post_train): parameters, FLOPs per sample and peak memory into `record`."""
    # before counting adds to it
    record["peak_cpu_rss_mb"], record["peak_cpu_rss_window"], record["run_cpu_mem_mb"] = peak_cpu_memory()
    errors = []
    try:
        record.update(parameter_counts(model))
    except Exception as exc:  # a cost that cannot be measured is a note, not a failure
        errors.append(f"params: {type(exc).__name__}: {exc}")
    try:
        sample = data.test[0][0].unsqueeze(0).to(device)
        record["flops_input_shape"] = list(sample.shape[1:])
        record["flops_fwd"], ops = count_flops(model, sample)
        record["flops_fwdbwd"], ops_train = count_flops(model, sample, backward=True)
        record["flops_by_op"] = ops
        record["flops_source"] = _source(ops_train)
    except Exception as exc:
        errors.append(f"flops: {type(exc).__name__}: {exc}")
    if errors:
        record["cost_error"] = "; ".join(errors)
