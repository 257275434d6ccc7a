"""PreAct-ResNet-18: He, Zhang, Ren & Sun, "Identity Mappings in Deep Residual Networks",
ECCV 2016.

ResNet-18's layout (see :mod:`arena.models.resnet`: same widths, strides, stems and stage
names) with full pre-activation units: ``x + conv(relu(bn(conv(relu(bn(x))))))``, the shortcut
left clean (a 1x1 projection of the pre-activated input where the shape changes). As in the
paper (Section 4, and its reference code), one extra batch-norm and ReLU follow the last unit,
here at the end of ``layer4`` so that the last feature map is activated. With the ImageNet stem
(which ends in batch-norm, ReLU and max-pool) the first unit skips its own pre-activation.
"""

from __future__ import annotations

import torch
from torch import nn

from arena.models.base import ArenaNet
from arena.models.resnet import WIDTHS, cifar_form, gap_head, init_convs


class PreActBlock(nn.Module):
    """``shortcut(a) + conv(relu(bn(conv(a))))`` with ``a = relu(bn(x))``."""

    def __init__(self, cin: int, cout: int, stride: int, preact: bool = True) -> None:
        super().__init__()
        self.pre: nn.Module = (
            nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU()) if preact else nn.Identity()
        )
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.pre(x)
        skip = x if self.shortcut is None else self.shortcut(a)
        out = self.conv1(a)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + skip


def preact_resnet18(image_shape: tuple[int, int, int], num_classes: int) -> ArenaNet:
    c = image_shape[0]
    cifar = cifar_form(image_shape)
    stem: nn.Module
    if cifar:
        stem = nn.Conv2d(c, 64, 3, 1, 1, bias=False)
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
        first = i == 0
        blocks: list[nn.Module] = [
            PreActBlock(cin, cout, 1 if first else 2, preact=cifar or not first),
            PreActBlock(cout, cout, 1),
        ]
        if i == len(WIDTHS) - 1:
            blocks += [nn.BatchNorm2d(cout), nn.ReLU()]  # the final activation
        stages.append((f"layer{i + 1}", nn.Sequential(*blocks)))
        cin = cout
    stages.append(("head", gap_head(cin, num_classes)))
    net = ArenaNet(
        "preact-resnet18",
        image_shape,
        num_classes,
        stages,
        feature_stages=("stem", "layer1", "layer2", "layer3", "layer4"),
    )
    init_convs(net)
    return net
