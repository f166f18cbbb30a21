"""A run is a function of its id: the same metrics whatever thread count the process was started with, and its
record holds the per-example test results the report's paired tests use (issue 19)."""

from __future__ import annotations

import numpy as np
import torch

from bench.run.config import RunConfig, TrainConfig
from bench.run.runner import CPU_THREADS, DataCache, execute
from bench.run.store import decode_correct


def _run(threads: int) -> dict:
    cfg = RunConfig("conv", "mnist1d", 0, dict(arch="flextcn2", width=16, dropout=0.1), {},
                    TrainConfig(epochs=2, batch_size=128, lr=3e-2, max_steps_per_epoch=10))  # fmt: skip
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        record = execute(cfg, "cpu", DataCache(None), progress=False)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert after == threads  # the run's own thread count does not leak into the process
    assert record["status"] == "ok", record.get("error")
    return record


def test_one_run_id_gives_the_same_metrics_with_1_and_2_threads():
    one, two = _run(1), _run(2)
    keys = ["test_accuracy", "test_loss", "val_accuracy", "val_loss", "train_loss", "best_epoch", "epochs_run"]
    assert [one[k] for k in keys] == [two[k] for k in keys]
    assert [h["val_loss"] for h in one["history"]] == [h["val_loss"] for h in two["history"]]
    assert one["threads"] == two["threads"] == CPU_THREADS  # recorded in the run file
    # per test example, right or wrong: 1,000 MNIST-1D test signals in 1 bit each, consistent with the accuracy
    correct = decode_correct(one["test_correct"], one["test_n"])
    assert one["test_n"] == 1000 and len(one["test_correct"]) <= 4 * 126 / 3 + 4
    assert 100.0 * np.mean(correct) == one["test_accuracy"]
    assert one["test_correct"] == two["test_correct"]
