"""The dataset registry: `register_dataset`, `list_datasets`, `get_dataset`, `loader_options`.

A loader is a function `(*, seed, data_root, **options) -> Loaded` (see datasets/base.py).
`get_dataset` checks the options, calls the loader, and carves a validation split from
the training data (seeded, identical for every method) unless the dataset has its own.
The TaskSpec comes from the dataset's card (dim, classes, causality, metric) and the shape
of a training sample (channels, size).
Built-ins are registered lazily (datasets/_builtin.py); plugins use the entry-point group
`lksbench.datasets` or `--plugin`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.base import Entry, Registry, UserError
from datasets._builtin import BUILTIN_DATASETS
from datasets.base import DatasetCard, DataSplits, Loaded, LoaderOptions

__all__ = ["DataSplits", "DatasetCard", "Loaded", "LoaderOptions", "DATASETS", "get_dataset", "list_datasets",
           "loader_options", "register_dataset"]  # fmt: skip

DATASETS = Registry("dataset", "lksbench.datasets", BUILTIN_DATASETS)


def register_dataset(name: str, **card: Any) -> Callable:
    """Decorator: register a loader under `name`; card fields are DatasetCard's."""
    return DATASETS.register(name, card=DatasetCard.make(**card))


def list_datasets(pattern: str | None = None) -> list[str]:
    return DATASETS.list(pattern)


def get_entry(name: str) -> Entry:
    return DATASETS.get(name)


def loader_options(name: str) -> LoaderOptions:
    """What dataset `name`'s loader accepts: its options (besides seed and data_root) with their defaults and
    annotations, and whether it takes any option (**options). The one place that reads a loader's signature."""
    params = inspect.signature(get_entry(name).obj).parameters
    own = {k: p for k, p in params.items() if k not in ("seed", "data_root") and p.kind is not p.VAR_KEYWORD}
    return LoaderOptions(
        {k: p.default for k, p in own.items()},
        {k: p.annotation if isinstance(p.annotation, str) else p.annotation.__name__ for k, p in own.items()
         if p.annotation is not p.empty},
        any(p.kind is p.VAR_KEYWORD for p in params.values()),
    )  # fmt: skip


def shape_text(name: str) -> str:
    """The card's shape as `run_all.py list` shows it, with the option that changes it: "3 x 32 x 32 (resolution)"."""
    card, takes = get_entry(name).card, loader_options(name).defaults
    text = " x ".join(map(str, card.shape))
    if card.dim == 2:
        return text + (" (resolution)" if "resolution" in takes else "")
    size_option = next((o for o in ("length", "sr") if o in takes), None)
    return text + (f" (option {size_option})" if size_option else "")


def default_data_root() -> Path:
    return Path(os.environ.get("LKSBENCH_DATA", "./data"))


def get_dataset(
    name: str,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    data_root: str | Path | None = None,
    statistics: dict[str, Any] | None = None,
    hold_out: bool = True,
    **options: Any,
) -> DataSplits:
    """Train/val/test splits and the TaskSpec of dataset `name`.

    `hold_out=False` (the papers' own protocol, train.selection="paper"): no validation split is carved;
    the model trains on all the training data and the validation split is the dataset's own, if it has
    one, else the test set itself (the same object).

    `statistics` (the `info["standardised"]` of another load) normalises with those statistics
    instead of this load's own training part: cross-resolution evaluation keeps the source's.
    """
    from datasets.splits import carve_validation  # lazy: `import datasets` stays torch-free until data is built
    from datasets.tensors import apply_standardise  # lazy: the same

    entry = get_entry(name)
    if not 0 < val_fraction < 1:
        raise UserError(f"val_fraction must be in (0, 1), got {val_fraction}")
    accepts = loader_options(name)
    unknown = sorted(k for k in options if not accepts.takes(k))
    if unknown:
        valid = sorted(accepts.defaults)
        raise UserError(
            f"dataset {name!r} has no option(s) {', '.join(unknown)}; its options: {', '.join(valid) or 'none'}"
        )
    root = Path(data_root) if data_root is not None else default_data_root()
    loaded: Loaded = entry.obj(seed=seed, data_root=root, **options)
    if loaded.val is not None:
        train, val = loaded.train, loaded.val
    elif hold_out:
        train, val = carve_validation(loaded.train, val_fraction, seed)
    else:
        train, val = loaded.train, None  # the test set stands in, below
    splits = (train, loaded.test) if val is None else (train, val, loaded.test)
    fitted = None
    if loaded.fit_normalisation is not None:  # before the info is copied: the loader records what it fitted
        splits, fitted = loaded.fit_normalisation(splits, statistics)
    info = dict(loaded.info)
    if fitted is not None:
        info["standardised"] = fitted
    if loaded.standardise is not None:
        splits, info["standardised"] = apply_standardise(splits, loaded.standardise, statistics)
    train, test = splits[0], splits[-1]
    val = splits[1] if val is not None else None
    if val is None:
        val, info["validation"] = test, "the test set (no split carved: the papers' protocol)"
    found = loaded.task.input_shape if loaded.task else tuple(train[0][0].shape)
    task = entry.card.task_at(found) if len(found) == entry.card.dim + 1 else None
    if task is None or loaded.task not in (None, task):
        given = loaded.task or f"samples of shape {found}"
        raise ValueError(f"dataset {name!r}: its loader's {given} disagrees with its card {entry.card}")
    return DataSplits(train, val, test, task, loaded.augment, info)
