"""The CIFAR ResNets of He et al. (CVPR 2016, section 4.2): resnet20/32/44/56/110.

6n + 2 layers: a 3 x 3 stem conv, three stages of n basic blocks at w / 2w / 4w channels
(w = 16 in the paper; the `width` hparam lets tiny suites shrink it), the first block of
stages 2 and 3 striding by 2; "option A" shortcuts (parameter-free: subsample by 2 and pad
the new channels with zeros); global average pool and a linear head. Convs and the head
are Kaiming-normal initialised, as in the akamaster re-implementation the FlexConv paper's
baselines use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods import register_method
from methods.task import TaskSpec

DEPTHS = (20, 32, 44, 56, 110)


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: keep every other pixel, and pad the extra channels with zeros on both sides."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.pad = ((cout - cin) // 2, cout - cin - (cout - cin) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, *self.pad))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(cin, cout, stride), nn.BatchNorm2d(cout), nn.ReLU(), conv3x3(cout, cout), nn.BatchNorm2d(cout)
        )
        self.shortcut = ZeroPadShortcut(cin, cout, stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, task: TaskSpec, depth: int, width: int):  # width's default: the registered build()
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"a CIFAR ResNet has 6n + 2 layers, got depth {depth}")
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        blocks = (depth - 2) // 6
        layers: list[nn.Module] = [conv3x3(task.in_channels, width), nn.BatchNorm2d(width), nn.ReLU()]
        cin = width
        for stage, channels in enumerate((width, 2 * width, 4 * width)):
            for i in range(blocks):
                layers.append(BasicBlock(cin, channels, stride=2 if stage > 0 and i == 0 else 1))
                cin = channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, task.num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def _register(depth: int) -> None:
    def build(
        task: TaskSpec,
        width: int = 16,  # channels of the first stage (then 2x, 4x)
    ) -> CifarResNet:  # fmt: skip
        return CifarResNet(task, depth, width)

    build.__name__ = build.__qualname__ = f"resnet{depth}"
    register_method(
        f"resnet{depth}",
        kind="model",
        description=f"CIFAR ResNet-{depth}: 3 stages x {(depth - 2) // 6} basic blocks, 16/32/64 channels, option-A shortcuts",
        paper="He, Zhang, Ren, Sun: Deep Residual Learning for Image Recognition (CVPR)",
        year=2016,
        dims=(2,),
        causal=False,
        kernel_size_unit="fixed 3 x 3",
    )(build)


for _depth in DEPTHS:
    _register(_depth)
