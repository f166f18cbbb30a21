"""Where CUDA behaves differently from the CPU: autocast, the FFT path, deformable's CUDA op, determinism,
what a CUDA run records. Marked `gpu`: skipped without a CUDA device (conftest.py); run by
`python -m bench.cost.gpu_validate` on a GPU machine."""

from __future__ import annotations

import pytest
import torch

from bench.run import store
from bench.run.config import RunConfig, TrainConfig
from bench.run.runner import run_grid
from methods import get_method
from methods.functional import conv_direct, conv_fft

pytestmark = pytest.mark.gpu


@pytest.fixture()
def exact_fp32():
    """TF32 off: CUDA float32 then matches the CPU to float32 rounding."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("dim, causal, size", [(1, True, 256), (2, False, (24, 24))])
def test_flexconv_on_cuda_matches_the_cpu_and_keeps_its_kernel_net_in_float32(dim, causal, size, exact_fp32):
    torch.manual_seed(0)
    layer = get_method("flexconv").obj(8, 8, dim=dim, causal=causal, size=size)
    shape = (4, 8, size) if dim == 1 else (4, 8, *size)
    x = torch.randn(shape)
    reference = layer(x)
    gpu = layer.to("cuda")
    assert _rel(gpu(x.cuda()), reference) < 1e-4
    with torch.autocast("cuda", dtype=torch.bfloat16):
        kernel = gpu.sample_kernel()
        out = gpu(x.cuda())
    assert kernel.dtype == torch.float32  # sines of large arguments: the kernel net runs outside autocast
    assert torch.isfinite(out).all() and _rel(out, reference) < 3e-2


@pytest.mark.parametrize("dim, causal", [(1, True), (1, False), (2, False)])
def test_the_fft_path_on_cuda_matches_the_cpu_and_the_direct_path(dim, causal, exact_fp32):
    torch.manual_seed(0)
    shape, kernel = ((2, 6, 300), (5, 6, 63)) if dim == 1 else ((2, 6, 20, 20), (5, 6, 9, 9))
    x, w, b = torch.randn(shape), torch.randn(kernel), torch.randn(kernel[0])
    cpu = conv_fft(x, w, b, causal)
    cuda = conv_fft(x.cuda(), w.cuda(), b.cuda(), causal)
    assert _rel(cuda, cpu) < 1e-4 and _rel(conv_direct(x.cuda(), w.cuda(), b.cuda(), causal), cpu) < 1e-4
    with torch.autocast("cuda", dtype=torch.bfloat16):  # the FFT path leaves autocast: bf16 inputs, fp32 math
        mixed = conv_fft(x.cuda().bfloat16(), w.cuda(), b.cuda(), causal)
    assert _rel(mixed, cpu) < 2e-2


def test_deformable_cuda_op_matches_the_cpu_sampling_path(exact_fp32):
    torch.manual_seed(0)
    layer = get_method("deformable").obj(6, 8, dim=2, causal=False, size=(12, 12))
    with torch.no_grad():  # offsets away from zero, so the sampling is exercised
        layer.offset.weight.normal_(0, 0.3)
    x = torch.randn(3, 6, 12, 12, requires_grad=True)
    cpu = layer(x)  # grid_sample on the CPU
    cpu.square().sum().backward()
    grad_cpu, x.grad = x.grad.clone(), None
    gpu = layer.to("cuda")
    xc = x.detach().cuda().requires_grad_()
    out = gpu(xc)  # torchvision.ops.deform_conv2d on CUDA
    out.square().sum().backward()
    assert _rel(out, cpu) < 1e-4 and _rel(xc.grad, grad_cpu) < 1e-3


def _cfg(seed=0, **train):
    return RunConfig("conv", "digits", seed, {"arch": "flexnet3", "width": 8}, {},
                     TrainConfig(epochs=2, batch_size=32, max_steps_per_epoch=20, **train))  # fmt: skip


def test_deterministic_cuda_runs_repeat_exactly_and_record_the_gpu(tmp_path):
    cfg = _cfg(deterministic=True)
    run_grid([cfg], tmp_path / "a", "cuda", progress=False)
    run_grid([cfg], tmp_path / "b", "cuda", progress=False)
    (a,), (b,) = store.load_runs(tmp_path / "a")[0], store.load_runs(tmp_path / "b")[0]
    assert a["status"] == b["status"] == "ok"
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert a["test_loss"] == b["test_loss"]
    assert a["env"]["gpu_name"] == torch.cuda.get_device_name(0) and a["env"]["cuda"]
    assert a["peak_gpu_mem_mb"] > 0 and a["fastpath"]["data_on_gpu"] and not a["fastpath"]["cudnn_benchmark"]


def test_bf16_autocast_trains_every_continuous_kernel_method(tmp_path):
    runs = [RunConfig(m, "digits", 0, {"arch": "flexnet3", "width": 8}, {},
                      TrainConfig(epochs=1, batch_size=64, max_steps_per_epoch=10, compile="off"))
            for m in ("flexconv", "ckconv", "ckconv_magnet", "flexconv_sep", "smpconv", "s4d")]  # fmt: skip
    # (eager: compiling six models would take minutes; tests/test_compile.py trains the compiled step on CUDA)
    run_grid(runs, tmp_path, "cuda", progress=False)
    records, _ = store.load_runs(tmp_path)
    assert len(records) == len(runs)
    assert all(r["status"] == "ok" for r in records), [(r["method"], r.get("error")) for r in records]
