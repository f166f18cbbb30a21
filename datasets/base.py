"""What a loader returns (Loaded), what get_dataset returns (DataSplits), and a dataset's card."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from methods.task import TaskSpec


@dataclass
class Loaded:
    train: Any  # a torch Dataset yielding (x, y); TensorDataset gets a fast path
    test: Any
    # None (the built-ins): get_dataset builds the TaskSpec from the card and the shape of a training sample;
    # a loader that gives one must agree with its card
    task: TaskSpec | None = None
    val: Any = None  # a dataset's own validation split; else get_dataset carves one
    augment: Callable | None = None  # batch -> batch, applied to training batches only
    info: dict[str, Any] = field(default_factory=dict)  # stored in the run file (e.g. the pMNIST permutation seed)
    # standardise x over these dims with the statistics of the *training part* (after the validation
    # split is carved), so no validation or test sample informs the normalisation; None: as loaded
    standardise: tuple[int, ...] | None = None
    # or, for data kept in compact storage: (splits, statistics or None) -> (splits, statistics), called by
    # get_dataset after the carve, so the loader's normalisation is fitted on the training part alone
    fit_normalisation: Callable | None = None


class DataSplits(NamedTuple):
    train: Any
    val: Any
    test: Any
    task: TaskSpec
    augment: Callable | None = None
    info: dict[str, Any] = {}


@dataclass(frozen=True, kw_only=True)
class DatasetCard:
    """A dataset's facts, declared once: the TaskSpec of every load is built from them (`task_at`)."""

    shape: tuple[int, ...]  # one sample at the default options: (channels, length) or (channels, height, width)
    description: str = ""
    classes: int | None = None  # None for regression
    source: str = "embedded"  # "embedded" (no download), "download", or "manual" (the user fetches it)
    paper_name: str = ""  # how the papers' tables name it (sMNIST, CIFAR-10, ...)
    causal: bool = False  # a sequence task read out at the last step
    metric: str = "accuracy"  # accuracy, mse or auc (methods/task.py)

    def __post_init__(self):
        shape = tuple(self.shape) if isinstance(self.shape, (tuple, list)) else ()
        if len(shape) not in (2, 3) or not all(isinstance(n, int) and n > 0 for n in shape):
            raise ValueError(f"a dataset card's shape is (channels, length) or (channels, height, width), "
                             f"got {self.shape!r}")  # fmt: skip
        object.__setattr__(self, "shape", shape)
        self.task_at(shape)  # TaskSpec checks the metric and causality

    @property
    def dim(self) -> int:
        return len(self.shape) - 1

    def task_at(self, input_shape) -> TaskSpec:
        """The task of samples shaped `input_shape`: (channels, *size), with as many sizes as the card's."""
        channels, *size = (int(n) for n in input_shape)
        return TaskSpec(self.dim, channels, self.classes or 1, size[0] if self.dim == 1 else tuple(size), self.causal,
                        self.metric)  # fmt: skip

    def task_for(self, options: dict[str, Any]) -> TaskSpec:
        """The task of a load with `options`, from the card alone (no data): the card's shape with a `length` (1D)
        or `resolution` (2D) option applied."""
        channels, *size = self.shape
        if self.dim == 1 and isinstance(options.get("length"), int):
            size = [options["length"]]
        if self.dim == 2 and isinstance(options.get("resolution"), int):
            size = [options["resolution"]] * 2
        return self.task_at((channels, *size))

    @classmethod
    def make(cls, **card: Any) -> DatasetCard:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(card) - known)
        if "dim" in card or isinstance(card.get("shape"), str):  # the card's form before the shape became a tuple
            raise ValueError("a dataset card's shape is a tuple, shape=(channels, length) or (channels, height, "
                             "width), and its dim follows from it: drop dim= and write e.g. shape=(3, 32, 32)")  # fmt: skip
        if unknown:
            raise ValueError(f"unknown dataset-card field(s) {unknown}; valid: {sorted(known)}")
        if "shape" not in card:
            raise ValueError("a dataset card needs its shape: (channels, length) or (channels, height, width)")
        return cls(**card)


@dataclass(frozen=True)
class LoaderOptions:
    """What a dataset's loader accepts besides `seed` and `data_root` (datasets.loader_options)."""

    defaults: dict[str, Any]  # option -> its default (inspect.Parameter.empty for none), in signature order
    annotations: dict[str, str]  # option -> its annotation as written ("int", "float | None")
    any_option: bool  # it takes **options

    def takes(self, option: str) -> bool:
        return option in self.defaults or self.any_option
