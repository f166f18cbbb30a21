"""The ops count's columns (bench/cost/ops_per_step.py): which ops launch a kernel, and the free-kernel floor."""

from __future__ import annotations

import torch

from bench.cost import ops_per_step as ops

aten = torch.ops.aten


def test_views_allocations_and_markers_launch_no_kernel_and_compute_does():
    for op in (aten.view.default, aten.permute.default, aten.detach.default, aten._conj.default,
               aten.unbind.int, aten.as_strided.default, aten.empty.memory_format):  # fmt: skip
        assert not ops.launches_kernel(op), op
    for op in (aten.add.Tensor, aten.add_.Tensor, aten.bmm.default, aten.clone.default, aten.copy_.default,
               aten._fft_r2c.default, aten.convolution.default):  # fmt: skip
        assert ops.launches_kernel(op), op


def test_the_counts_split_as_they_say():
    c = ops.count("ckconv", "mnist1d-40")  # its global kernel takes the FFT path there
    assert 0 < c["in_fft"] <= c["in_convolutions"] and 0 < c["launching"] < c["ops"]
    assert sum(c["by_op"].values()) == c["ops"]


def test_free_kernels_is_the_plain_network_with_the_methods_convolutions():
    network = "mnist1d-40"
    plain = ops.count("conv", network)
    assert ops.free_kernels("conv", network, plain) == plain["ops"]  # its own convolutions swapped for themselves
    # a fixed 33-tap kernel is a parameter (nothing to generate): the floor is its count, less one copy per FFT
    # layer that AccumulateGrad makes of the weight's non-contiguous gradient (a generated kernel is no leaf)
    fixed = ops.count("conv33", network)
    assert fixed["in_fft"] > 0
    layers = sum(1 for m in ops.build("conv33", network)[0].model.modules() if type(m).__name__ == "Conv")
    assert 0 <= fixed["ops"] - ops.free_kernels("conv33", network, fixed) <= layers
    generated = ops.count("ckconv", network)  # the same convolutions, and a kernel net to evaluate
    assert ops.free_kernels("ckconv", network, generated) == ops.free_kernels("conv33", network, fixed)
    assert generated["ops"] > fixed["ops"]
    assert ops.free_kernels("resnet20", "flexnet3-8px", ops.count("resnet20", "flexnet3-8px")) is None  # a model
