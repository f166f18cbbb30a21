"""The MNIST-1D paper's reference models, so its published table has rows of ours beside it.

Greydanus & Kobak, "Scaling down deep learning with MNIST-1D" (ICML 2024); the models as
described in the paper and its repository (greydanus/mnist1d, notebooks/models.py), written
here from that description. PyTorch's default initialisation, as there. On the default 40-step
signals: logreg 410 parameters, mlp 15,210, cnn1d_mnist1d 5,210, gru 5,134.

- `logreg`: one linear layer on the flattened input.
- `mlp`: two hidden layers of 100 with ReLU; the second is residual, h + relu(W h).
- `cnn1d_mnist1d`: three convolutions of 25 channels (kernels 5, 3, 3; stride 2; padding 1),
  ReLU after each, then a linear layer on the flattened features (25 x 5 on 40 steps).
- `gru`: a bidirectional GRU with hidden size 6 over the steps, then a linear layer on the
  outputs of all steps (2 x 6 x 40 on 40 steps).
None of them is causal: each reads the whole signal at once.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.base import UserError
from methods import register_method
from methods.task import TaskSpec

PAPER = "Greydanus & Kobak: Scaling down deep learning with MNIST-1D (ICML)"


def flat_size(task: TaskSpec) -> int:
    return math.prod(task.input_shape)


def positive(name: str, **values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{name}: {key} must be a positive integer, got {value!r}")


CARD = dict(kind="model", paper=PAPER, year=2024, causal=False, references=())


@register_method("logreg", description="logistic regression: one linear layer on the flattened input", **CARD)
class LogReg(nn.Module):
    def __init__(self, task: TaskSpec):
        super().__init__()
        self.linear = nn.Linear(flat_size(task), task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


@register_method("mlp", description="MLP: two hidden layers of 100, the second residual (MNIST-1D paper)", **CARD)
class MLP(nn.Module):
    def __init__(
        self, task: TaskSpec,
        hidden: int = 100,  # units of each hidden layer
    ):  # fmt: skip
        super().__init__()
        positive("mlp", hidden=hidden)
        self.first = nn.Linear(flat_size(task), hidden)
        self.second = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.first(x.flatten(1)))
        h = h + torch.relu(self.second(h))  # the residual second layer
        return self.head(h)


@register_method(
    "cnn1d_mnist1d",
    description="MNIST-1D paper's CNN: 3 strided convs of 25 channels (kernels 5/3/3), linear on the flattened features",
    dims=(1,),
    **CARD,
)
class StridedCNN(nn.Module):
    def __init__(
        self, task: TaskSpec,
        channels: int = 25,  # channels of each conv
    ):  # fmt: skip
        super().__init__()
        positive("cnn1d_mnist1d", channels=channels)
        cin = task.in_channels
        self.convs = nn.ModuleList(
            [nn.Conv1d(cin, channels, 5, stride=2, padding=1), nn.Conv1d(channels, channels, 3, stride=2, padding=1),
             nn.Conv1d(channels, channels, 3, stride=2, padding=1)]
        )  # fmt: skip
        length = task.size
        for conv in self.convs:
            length = (length + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
        if length < 1:
            raise UserError(f"cnn1d_mnist1d needs a signal of at least 8 steps, this task has {task.size}")
        self.head = nn.Linear(channels * length, task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.relu(conv(x))
        return self.head(x.flatten(1))


@register_method(
    "gru",
    description="MNIST-1D paper's GRU: bidirectional, hidden size 6, linear on the outputs of all steps",
    dims=(1,),
    **CARD,
)
class BiGRU(nn.Module):
    def __init__(
        self, task: TaskSpec,
        hidden: int = 6,  # the GRU's hidden size per direction
    ):  # fmt: skip
        super().__init__()
        positive("gru", hidden=hidden)
        self.gru = nn.GRU(task.in_channels, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden * task.size, task.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.transpose(1, 2))  # (B, L, C) in, (B, L, 2 hidden) out
        return self.head(out.flatten(1))
