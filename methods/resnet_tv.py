"""torchvision's ResNet-10 and ResNet-18 adapted to small images (the FlexConv paper's STL-10 baselines).

Built with torchvision.models.resnet.ResNet and BasicBlock ([1, 1, 1, 1] / [2, 2, 2, 2]
blocks per stage), with the ImageNet stem (7 x 7 stride-2 conv and 3 x 3 stride-2 max pool,
a 4x reduction) replaced by a 3 x 3 stride-1 conv and no pooling, as is usual for
CIFAR-sized inputs. `width` is the first stage's channels (64 in torchvision, stages
w / 2w / 4w / 8w); torchvision fixes it for BasicBlock nets, so the stages are built with
torchvision's own `_make_layer` at the asked width. Tiny suites shrink it to stay fast.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from methods import register_method
from methods.task import TaskSpec


def small_image_resnet(task: TaskSpec, blocks: list[int], width: int) -> ResNet:
    if width < 1:
        raise ValueError(f"width must be positive, got {width}")
    with torch.device("meta"):  # a skeleton only: every part with parameters is rebuilt below
        model = ResNet(BasicBlock, blocks, num_classes=task.num_classes)
    model.conv1 = nn.Conv2d(task.in_channels, width, 3, stride=1, padding=1, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    model.maxpool = nn.Identity()
    model.inplanes = width  # _make_layer reads and advances it
    model.layer1 = model._make_layer(BasicBlock, width, blocks[0])
    for i, stage in enumerate(("layer2", "layer3", "layer4"), start=1):
        setattr(model, stage, model._make_layer(BasicBlock, width * 2**i, blocks[i], stride=2))
    model.fc = nn.Linear(8 * width, task.num_classes)
    for m in model.modules():  # torchvision's init (BatchNorm's default 1 / 0 is the same)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


CARD = dict(
    kind="model",
    paper="He, Zhang, Ren, Sun: Deep Residual Learning for Image Recognition (CVPR); torchvision",
    year=2016,
    dims=(2,),
    causal=False,
    kernel_size_unit="fixed 3 x 3",
)


@register_method(
    "resnet10", description="torchvision ResNet-10 (BasicBlock [1,1,1,1]), 3x3 stride-1 stem, no max pool", **CARD
)
def resnet10(
    task: TaskSpec,
    width: int = 64,  # channels of the first stage (then 2x, 4x, 8x)
) -> ResNet:  # fmt: skip
    return small_image_resnet(task, [1, 1, 1, 1], width)


@register_method(
    "resnet18", description="torchvision ResNet-18 (BasicBlock [2,2,2,2]), 3x3 stride-1 stem, no max pool", **CARD
)
def resnet18(
    task: TaskSpec,
    width: int = 64,  # channels of the first stage (then 2x, 4x, 8x)
) -> ResNet:  # fmt: skip
    return small_image_resnet(task, [2, 2, 2, 2], width)
