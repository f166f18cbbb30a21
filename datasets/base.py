"""What a loader returns (Loaded), what get_dataset returns (DataSplits), and a dataset's card."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

from methods.task import TaskSpec


@dataclass
class Loaded:
    train: Any  # a torch Dataset yielding (x, y); TensorDataset gets a fast path
    test: Any
    task: TaskSpec
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


@dataclass(frozen=True)
class DatasetCard:
    description: str = ""
    dim: int = 1
    shape: str = ""  # one sample, e.g. "784 x 1" or "3 x 32 x 32"
    classes: int | None = None  # None for regression
    source: str = "embedded"  # "embedded" (no download), "download", or "manual" (the user fetches it)
    paper_name: str = ""  # how the papers' tables name it (sMNIST, CIFAR-10, ...)
    causal: bool = False  # a sequence task read out at the last step (must match the loader's TaskSpec)
    metric: str = "accuracy"  # accuracy, mse or auc: methods/task.py (must match the loader's TaskSpec)

    def task_for(self, options: dict[str, Any]) -> TaskSpec:
        """The task the loader will report with `options`, from the card alone (no data): the numbers of
        `shape` ("C x L" or "C x H x W"), with a `length` or `resolution` option applied; else the stub."""
        import re

        numbers = [int(n) for n in re.findall(r"\d+", self.shape.split("(")[0])]
        if len(numbers) != self.dim + 1:
            return self.task_stub()
        channels, size = numbers[0], numbers[1:]
        if self.dim == 1 and isinstance(options.get("length"), int):
            size = [options["length"]]
        if self.dim == 2 and isinstance(options.get("resolution"), int):
            size = [options["resolution"]] * 2
        return TaskSpec(self.dim, channels, self.classes or 1, size[0] if self.dim == 1 else tuple(size), self.causal,
                        self.metric)  # fmt: skip

    def task_stub(self) -> TaskSpec:
        """A TaskSpec with this card's dim, causality and metric, for checking method support without loading data."""
        size = 8 if self.dim == 1 else (8, 8)
        return TaskSpec(self.dim, 1, self.classes or 1, size, self.causal, self.metric)

    @classmethod
    def make(cls, **card: Any) -> DatasetCard:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(card) - known)
        if unknown:
            raise ValueError(f"unknown dataset-card field(s) {unknown}; valid: {sorted(known)}")
        return cls(**card)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
