"""The cpu suite trains for real: its runs converge, stop early on validation, and meet the MNIST-1D paper's anchors."""

import pytest

from bench.papers import get_suite
from bench.run.grid import build_grid
from bench.run.runner import DataCache, execute


def _cpu_run(method: str, dataset: str = "mnist1d") -> tuple:
    (cfg,) = build_grid(get_suite("cpu"), methods_sel=[method], datasets_sel=[dataset], seeds=(0,)).runs
    record = execute(cfg, "cpu", DataCache(None), progress=False)
    assert record["status"] == "ok", record.get("error")
    return cfg, record


def test_flexconv_converges_stops_early_and_logs_its_kernel_sizes():
    cfg, record = _cpu_run("flexconv")
    assert record["test_accuracy"] > 94.0, record["test_accuracy"]  # 10 classes: chance is 10 %
    assert record["stopped_early"] and record["epochs_run"] < cfg.train.epochs and record["lr_decays"] == 1
    sizes = [h["kernel_sizes"] for h in record["history"]]
    assert len(sizes) == record["epochs_run"] and all(sizes)  # the kernel-size trajectory is in the run file
    assert sizes[-1] != sizes[0]  # the mask moved: FlexConv learns its size


@pytest.mark.parametrize("method, paper, tolerance", [("logreg", 32.0, 4.0), ("cnn1d_mnist1d", 94.0, 5.0)])
def test_mnist1d_reference_models_land_near_the_paper(method, paper, tolerance):
    """The MNIST-1D paper's logistic regression (32 %) and CNN (94 %), under the cpu protocol, seed 0."""
    _, record = _cpu_run(method)
    assert abs(record["test_accuracy"] - paper) < tolerance, record["test_accuracy"]
