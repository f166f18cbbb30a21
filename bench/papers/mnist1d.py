"""MNIST-1D (Greydanus & Kobak, ICML 2024): the paper's four models under its own protocol, and the tables of
those models and every method on MNIST-1D beside the paper's numbers (results/reference/mnist1d.csv)."""

from __future__ import annotations

from bench.papers import PaperTable, Row
from bench.run.suite import Suite

ROWS = (Row("Logistic regression", "logreg"), Row("MLP", "mlp"), Row("CNN", "cnn1d_mnist1d"), Row("GRU", "gru"))
COLUMNS = {"mnist1d": "MNIST-1D", "mnist1d_shuffled": "MNIST-1D (shuffled)"}

# The paper's own protocol for its four models (greydanus/mnist1d notebooks/train.py): Adam at a flat lr 1e-2,
# batch 100, 8000 steps (222 epochs of our 3,600 training signals), no early stopping. Our one difference: the
# validation split and the best-validation checkpoint, as in every suite.
SUITES = (
    Suite(
        name="mnist1d-paper",
        description="the MNIST-1D paper's models under its own protocol (Adam 1e-2, batch 100, 8000 steps), 3 seeds "
        "(CPU, about 10 min on 2 cores)",
        methods=tuple(row.method for row in ROWS),
        datasets=("mnist1d", "mnist1d_shuffled"),
        seeds=(0, 1, 2),
        train=dict(epochs=222, batch_size=100, lr=1e-2, warmup_epochs=0, min_lr_factor=1.0),
        tags=("suite:mnist1d-paper",),
    ),
)

# the cpu suites (bench/run/suites.py) run every method beside the paper's models: each is a row of its own
TABLES = tuple(
    PaperTable(key, f"MNIST-1D (Greydanus & Kobak, ICML 2024): {what}", suite, COLUMNS, ROWS, references="mnist1d",
               others=True)
    for key, suite, what in (
        ("mnist1d", "cpu", "the paper's models and every method under the cpu suite's protocol"),
        ("mnist1d-full", "cpu-full", "every method under the cpu suite's protocol, shuffled signals too"),
        ("mnist1d-paper", "mnist1d-paper", "the paper's models under the paper's own protocol"))
)  # fmt: skip
