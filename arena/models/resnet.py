"""ResNet-18: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

Four stages of two basic blocks (two 3x3 convolutions with batch-norm, identity shortcut or a
1x1 projection when the shape changes), 64/128/256/512 channels, strides 1/2/2/2. Inputs up to
64 pixels get the CIFAR stem (one 3x3 stride-1 convolution, no max-pool, as in the paper's
Section 4.2); larger ones the ImageNet stem (7x7 stride-2 convolution and 3x3 stride-2
max-pool). The head is global average pooling and one linear layer. Convolutions use
He-normal initialisation (fan-out), as torchvision does.
"""

from __future__ import annotations

import torch
from torch import nn

from arena.models.base import ArenaNet

CIFAR_MAX_SIZE = 64
WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def cifar_form(image_shape: tuple[int, int, int]) -> bool:
    """Whether an input this size gets the CIFAR stem (no downsampling) rather than ImageNet's."""
    return max(image_shape[1:]) <= CIFAR_MAX_SIZE


def init_convs(net: nn.Module) -> None:
    """He-normal (fan-out) convolutions, unit batch-norm scales; torchvision's ResNet init."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def gap_head(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


def resnet18(image_shape: tuple[int, int, int], num_classes: int) -> ArenaNet:
    c = image_shape[0]
    stem: nn.Sequential
    if cifar_form(image_shape):
        stem = nn.Sequential(nn.Conv2d(c, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
    else:
        stem = nn.Sequential(
            nn.Conv2d(c, 64, 7, 2, 3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
    stages: list[tuple[str, nn.Module]] = [("stem", stem)]
    cin = 64
    for i, cout in enumerate(WIDTHS):
        stride = 1 if i == 0 else 2
        blocks = nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))
        stages.append((f"layer{i + 1}", blocks))
        cin = cout
    stages.append(("head", gap_head(cin, num_classes)))
    net = ArenaNet(
        "resnet18",
        image_shape,
        num_classes,
        stages,
        feature_stages=("stem", "layer1", "layer2", "layer3", "layer4"),
    )
    init_convs(net)
    return net
