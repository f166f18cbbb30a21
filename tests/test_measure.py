"""Cost measurement: FLOP formulas against analytic counts, parameter rules, what a run file carries."""

import csv
import math

import pandas as pd
import pytest
import torch
import torchvision
from torch import nn

from bench.report import plots
from bench.report import summary as report
from bench.run import measure, store
from bench.run.config import RunConfig, TrainConfig
from bench.run.runner import run_grid
from methods.functional import conv_fft


def test_conv_flops_match_the_analytic_count():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 5, padding=2))
    x = torch.randn(1, 3, 16, 12)
    macs1, macs2 = 16 * 12 * 8 * 3 * 9, 16 * 12 * 4 * 8 * 25
    fwd, ops = measure.count_flops(model, x)
    assert fwd == 2 * (macs1 + macs2) and set(ops) == {"convolution"}
    # backward: weight gradients of both layers, input gradient of the second only (x needs none)
    fwdbwd, ops = measure.count_flops(model, x, backward=True)
    assert fwdbwd == 2 * (macs1 + macs2) + 2 * (macs1 + 2 * macs2)
    assert all(p.grad is None for p in model.parameters()) and model.training  # left as found


class Spectrum(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.n = n
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return torch.fft.irfft(torch.fft.rfft(x, n=self.n) * self.scale, n=self.n)


@pytest.mark.parametrize("n", [64, 256, 1000])
def test_fft_flops_follow_n_log_n(n):
    x = torch.randn(1, 3, n)
    fwd, ops = measure.count_flops(Spectrum(n), x)
    transforms = 3
    assert ops["_fft_r2c"] == round(2.5 * transforms * n * math.log2(n))
    assert ops["_fft_c2r"] == ops["_fft_r2c"]  # the inverse of a real transform of the same length
    assert fwd == 2 * ops["_fft_r2c"]


def test_fft_convolution_is_counted_with_complex_products():
    torch.manual_seed(0)
    x, w = torch.randn(1, 4, 100), nn.Parameter(torch.randn(6, 4, 101))

    class FFTConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = w

        def forward(self, x):
            return conv_fft(x, self.weight, None, causal=False)

    fwd, ops = measure.count_flops(FFTConv(), x)
    assert ops["_fft_r2c"] > 0 and ops["_fft_c2r"] > 0 and measure._source(ops) == "flop_counter+fft"

    class Mix(nn.Module):  # the frequency-domain channel mixing of an FFT convolution
        def __init__(self, dtype):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 4, 51, dtype=dtype))

        def forward(self, x):
            return torch.einsum("bif,oif->bof", x, self.w)

    real, _ = measure.count_flops(Mix(torch.float32), torch.randn(1, 4, 51))
    cplx, _ = measure.count_flops(Mix(torch.complex64), torch.randn(1, 4, 51, dtype=torch.complex64))
    assert real == 2 * 51 * 6 * 4 and cplx == 4 * real  # a complex multiply-add is 4 real ones


def test_deform_conv2d_is_counted():
    torch.manual_seed(0)
    layer = torchvision.ops.DeformConv2d(4, 6, 3, padding=1)
    offsets = nn.Conv2d(4, 2 * 9, 3, padding=1)

    class Deform(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer, self.offsets = layer, offsets

        def forward(self, x):
            return self.layer(x, self.offsets(x))

    x = torch.randn(1, 4, 10, 8)
    fwd, ops = measure.count_flops(Deform(), x)
    positions = 10 * 8
    conv = 2 * positions * 6 * 4 * 9
    sampling = positions * 4 * 9 * measure.BILINEAR_FLOPS  # no modulation mask
    assert ops["deform_conv2d"] == conv + sampling
    assert ops["convolution"] == 2 * positions * 18 * 4 * 9
    fwdbwd, ops_train = measure.count_flops(Deform(), x, backward=True)
    assert ops_train["_deform_conv2d_backward"] == 2 * conv + 3 * sampling
    assert measure._source(ops_train) == "flop_counter+deform_conv2d"


class Gaussian(nn.Module):
    """A toy layer with a weight and a size parameter sigma, claimed by its own optimizer group."""

    def __init__(self, with_size_hook: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(5, 3))
        self.sigma = nn.Parameter(torch.ones(2))
        self.offset = nn.Parameter(torch.zeros(1))
        if with_size_hook:
            self.size_parameters = lambda: [self.sigma, self.offset]

    def param_groups(self, base_lr):
        return [{"params": [self.sigma], "lr": 0.1 * base_lr}]


def test_weights_only_parameters_leave_size_parameters_out():
    plain = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5))
    counts = measure.parameter_counts(plain)
    assert counts == {"params_total": 30, "params_weights": 30, "params_weights_rule": "no size parameters"}
    by_groups = measure.parameter_counts(nn.Sequential(Gaussian(False), nn.Linear(3, 2)))
    assert by_groups["params_weights"] == 15 + 1 + 8 and by_groups["params_weights_rule"] == "param_groups hooks"
    by_hook = measure.parameter_counts(Gaussian(True))  # the explicit hook wins over param_groups
    assert by_hook["params_weights"] == 15 and by_hook["params_weights_rule"] == "size_parameters hooks"
    assert by_hook["params_total"] == 18


def _smoke_cfg():
    return RunConfig("conv", "digits", 0, {"arch": "flexnet3", "width": 4}, {}, TrainConfig(epochs=1, batch_size=32,
                     max_steps_per_epoch=3))  # fmt: skip


def test_run_files_carry_flops_throughput_and_memory(tmp_path):
    run_grid([_smoke_cfg()], tmp_path, "cpu", progress=False)
    records = {r["method"]: r for r in store.load_runs(tmp_path)[0]}
    for r in records.values():
        assert r["status"] == "ok" and "cost_error" not in r, r.get("cost_error")
        assert r["flops_fwdbwd"] > r["flops_fwd"] > 0
        assert r["throughput_train_samples_s"] > 0 and r["epoch_time_s"] > 0 and r["train_time_s"] > 0
        assert r["peak_cpu_rss_mb"] > 10 and r["params_weights"] == r["params"] <= r["params_total"]
    conv = records["conv"]
    assert conv["flops_input_shape"] == [1, 8, 8] and conv["flops_source"] == "flop_counter"
    # flexnet3 width 4 on 8x8 digits: every layer a 3x3 conv, widths 4, 6, 8, plus 1x1 shortcuts and the head
    layers = [(1, 4), (4, 4), (4, 4), (4, 6), (6, 6), (6, 8), (8, 8)]
    macs = 64 * (9 * sum(a * b for a, b in layers) + 4 * 6 + 6 * 8) + 8 * 10
    assert conv["flops_fwd"] == 2 * macs
    assert 0 < conv["run_cpu_mem_mb"] < conv["peak_cpu_rss_mb"]  # what the run added, not the process's RSS
    # the report's cost table and plots
    agg = report.aggregate(report.runs_frame(list(records.values())))
    written = report.cost_table(agg, tmp_path) + plots.cost_plots(agg, tmp_path, plots.method_styles(["conv"]))
    assert [p.name for p in written] == ["cost.csv", "cost.md", "accuracy_vs_cost.png", "accuracy_vs_training_time.png"]
    cost = pd.read_csv(tmp_path / "cost.csv").set_index("method")
    assert cost.loc["conv", "flops_fwd"] == 2 * macs and cost.loc["conv", "device"] == "cpu"
    assert cost.loc["conv", "throughput"] > 0 and cost.loc["conv", "peak_mem_mb"] == conv["run_cpu_mem_mb"]
    assert f"| {conv['params']:,} " in (tmp_path / "cost.md").read_text()  # counts with separators, not 1.522e+04


def test_a_measurement_failure_is_a_note_not_a_failed_run():
    class Breaks(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x):
            raise RuntimeError("cannot trace me")

    class Data:
        test = [(torch.zeros(3), 0)]

    record = {}
    measure.add_cost(None, Breaks(), Data(), record, "cpu")
    assert "flops: RuntimeError: cannot trace me" in record["cost_error"]
    assert record["params_weights"] == 3 and record["peak_cpu_rss_mb"] > 0


def test_gpu_check_runs_scaled_down_on_cpu(tmp_path, capsys):
    from bench.cli import main

    assert main(["--suite", "gpu-check", "--methods", "conv", "--device", "cpu", "--out", str(tmp_path)]) == 0
    assert "scaled-down check" in capsys.readouterr().out
    with (tmp_path / "perf" / "gpu-check-cpu.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["input"], r["status"]) for r in rows] == [
        ("conv", "seq1024", "ok"), ("conv", "img32", "ok"), ("conv", "img96", "ok")
    ]  # fmt: skip
    assert all(float(r["train_samples_s"]) > 0 and int(r["flops_fwd"]) > 0 and int(r["steps"]) > 0 for r in rows)


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU, gpu_validate runs its real steps")
def test_gpu_validate_says_in_one_line_that_there_is_no_gpu(capsys):
    from bench.cost.gpu_validate import main

    assert main([]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no CUDA GPU here" in out and "--rehearse" in out


@pytest.mark.gpu
def test_gpu_check_and_a_cuda_run_use_the_fast_path(tmp_path):
    from bench.cost.gpu_check import output_path, run_check

    assert run_check(["conv"], "cuda", tmp_path) == 0
    path = output_path(tmp_path, "cuda")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert path.name != "gpu-check-cpu.csv" and [r["status"] for r in rows] == ["ok"] * 3
    assert all("cudnn_benchmark" in r["fastpath"] and float(r["peak_mem_mb"]) > 0 for r in rows)
    assert all(int(r["steps"]) >= 10 for r in rows)
    run_grid([_smoke_cfg()], tmp_path, "cuda", progress=False)
    (r,) = store.load_runs(tmp_path)[0]
    assert r["status"] == "ok" and r["peak_gpu_mem_mb"] > 0 and r["flops_fwd"] > 0
    assert r["fastpath"] == {"tf32": True, "cudnn_benchmark": True, "data_on_gpu": True, "compile": "graph"}
    assert r["compile"] == "graph"  # auto: CUDA graphs for a fixed-shape model
