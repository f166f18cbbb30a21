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
    assert 0 < c["in_fft"] < c["launching"] < c["ops"]
    assert sum(c["by_op"].values()) == c["ops"]


def test_free_kernels_is_the_step_with_the_kernels_given():
    network = "mnist1d-40"
    sampled = ops.count("ckconv", network)  # a SIREN samples each layer's global kernel
    free = ops.free_kernels("ckconv", network)
    # a fixed kernel of the same shape on the same FFT path is a parameter: the same step, plus AccumulateGrad's
    # copy of each weight's gradient (at most two ops a layer), minus nothing to sample
    fixed = ops.count("conv33", network)
    layers = sum(1 for m in ops.build("ckconv", network)[0].model.modules() if hasattr(m, "sample_kernel"))
    assert fixed["in_fft"] == sampled["in_fft"] > 0 and layers >= 2
    assert 0 <= fixed["ops"] - free <= 2 * layers
    assert free < sampled["ops"]
    assert ops.free_kernels("conv33", network) is None  # no kernel to sample
    assert ops.free_kernels("ccnn", network) is not None  # a whole model whose layers sample theirs
