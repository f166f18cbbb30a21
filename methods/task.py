"""TaskSpec: everything a method needs to know about a dataset to build a model for it."""

from __future__ import annotations

from dataclasses import dataclass

# each metric, and whether higher is better: accuracy (%, cross-entropy), mse (regression), auc (binary: two
# outputs trained with cross-entropy, the ROC AUC of the probability of label 1, from 0 to 1 as the papers give it)
HIGHER_IS_BETTER = {"accuracy": True, "mse": False, "auc": True}


@dataclass(frozen=True)
class TaskSpec:
    dim: int  # 1: signals and sequences (B, C, L); 2: images (B, C, H, W)
    in_channels: int
    num_classes: int  # number of outputs; 1 for regression
    size: int | tuple[int, int]  # length, or (H, W)
    causal: bool = False  # sequence read out at the last step; no output may see the future
    metric: str = "accuracy"  # a key of HIGHER_IS_BETTER

    def __post_init__(self):
        if self.dim not in (1, 2):
            raise ValueError(f"TaskSpec.dim must be 1 or 2, got {self.dim}")
        if self.metric not in HIGHER_IS_BETTER:
            raise ValueError(f"TaskSpec.metric must be one of {', '.join(HIGHER_IS_BETTER)}, got {self.metric!r}")
        if self.metric == "auc" and self.num_classes != 2:
            raise ValueError(f"the auc metric is binary: num_classes must be 2, got {self.num_classes}")
        if self.causal and self.dim != 1:
            raise ValueError("only 1D tasks can be causal")
        size = self.size
        if self.dim == 2:
            size = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
            if len(size) != 2:
                raise ValueError(f"a 2D task needs size (H, W), got {self.size}")
            object.__setattr__(self, "size", size)
        elif not isinstance(size, int):
            raise ValueError(f"a 1D task needs an integer length, got {self.size}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, without the batch dimension."""
        size = (self.size,) if self.dim == 1 else tuple(self.size)
        return (self.in_channels, *size)

    def at_size(self, size) -> TaskSpec:
        """The same task at another resolution (cross-resolution evaluation)."""
        return TaskSpec(self.dim, self.in_channels, self.num_classes, size, self.causal, self.metric)
