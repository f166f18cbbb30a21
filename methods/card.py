"""MethodCard: what the registry knows about a method besides its factory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from methods.task import TaskSpec


@dataclass(frozen=True)
class MethodCard:
    kind: str = "layer"  # "layer" (goes into a backbone) or "model" (builds the whole net)
    description: str = ""  # one line, shown by `run_all.py list`
    paper: str = ""
    year: int | None = None
    dims: tuple[int, ...] = (1, 2)  # task dims it supports
    causal: bool = True  # can it run on causal (sequence) tasks?
    noncausal: bool = True  # can it run on non-causal tasks?
    resolution_change: bool = False  # can a trained model be evaluated at another resolution?
    deterministic_cuda: bool = True  # deterministic backward on CUDA
    learned_size: bool = False  # does it learn its kernel size (reports kernel_sizes())?
    kernel_size_unit: str = "taps"  # the unit kernel_sizes() reports in
    defaults: dict[str, Any] = field(default_factory=dict)  # hparams the registry entry fixes
    references: tuple[str, ...] = ()  # keys into results/reference/*.csv (model names)
    resources: dict[str, Any] = field(default_factory=dict)  # launcher hints, e.g. {"gpus": 1, "time_min": 60}

    @classmethod
    def make(cls, **card: Any) -> MethodCard:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(card) - known)
        if unknown:
            raise ValueError(f"unknown method-card field(s) {unknown}; valid: {sorted(known)}")
        if card.get("kind", "layer") not in ("layer", "model"):
            raise ValueError(f"kind must be 'layer' or 'model', got {card['kind']!r}")
        if "dims" in card:
            card["dims"] = tuple(card["dims"])
        if "references" in card:
            card["references"] = tuple(card["references"])
        return cls(**card)

    def skip_reason(self, task: TaskSpec) -> str | None:
        if task.dim not in self.dims:
            return f"supports {'/'.join(f'{d}D' for d in self.dims)} tasks only, this task is {task.dim}D"
        if task.causal and not self.causal:
            return "is not causal, and this task needs a causal model"
        if not task.causal and not self.noncausal:
            return "runs on causal sequence tasks only"
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
