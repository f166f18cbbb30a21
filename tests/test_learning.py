"""The quick suite's FlexConv and CKConv runs learn: they beat chance by a wide margin."""

import pytest

from bench.grid import build_grid
from bench.runner import DataCache, execute
from bench.suites import get_suite


@pytest.mark.parametrize("method, dataset, chance", [("flexconv", "mnist1d", 10.0), ("ckconv", "sdigits", 10.0)])
def test_quick_suite_run_beats_chance(method, dataset, chance):
    (cfg,) = build_grid(get_suite("quick"), methods_sel=[method], datasets_sel=[dataset]).runs
    record = execute(cfg, "cpu", DataCache(None), progress=False)
    assert record["status"] == "ok", record.get("error")
    assert record["test_accuracy"] > chance + 20, record["test_accuracy"]
    sizes = [h["kernel_sizes"] for h in record["history"]]
    assert len(sizes) == cfg.train.epochs and all(sizes)  # the kernel-size trajectory is in the run file
