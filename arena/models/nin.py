"""Network-in-Network: Lin, Chen & Yan, "Network In Network", ICLR 2014.

Three mlpconv blocks (a kxk convolution followed by two 1x1 convolutions, each with batch-norm
and ReLU), with 3x3 stride-2 max-pooling and dropout 0.5 between blocks, then global average
pooling. Kernels follow the paper's CIFAR-10 model (5x5, 5x5, 3x3); channels are 96/192/192
times ``width`` (0.5 by default, about 240k parameters at 32x32, so it trains on a CPU).

The paper's last 1x1 convolution maps to one feature map per class and global average pooling
turns those maps into logits. With no nonlinearity between them, a 1x1 convolution followed by
averaging equals averaging followed by a linear layer, so this net's ``head`` is global average
pooling then ``Linear(C, num_classes)``: the same function, and it leaves ``block3`` (ending in
the last hidden 1x1 convolution) as the last feature stage, which is what defenses that prune
or explain the last convolutional layer expect. Batch-norm is an addition to the 2014 model.
"""

from __future__ import annotations

from torch import nn

from arena.models.base import ArenaNet


def _conv(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), nn.ReLU()]


def _mlpconv(cin: int, cout: int, k: int, ones: int = 2) -> nn.Sequential:
    """A kxk convolution then ``ones`` 1x1 convolutions, each with batch-norm and ReLU."""
    layers = _conv(cin, cout, k)
    for _ in range(ones):
        layers += _conv(cout, cout, 1)
    return nn.Sequential(*layers)


def _pool() -> nn.Sequential:
    return nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1), nn.Dropout(0.5))


def nin(image_shape: tuple[int, int, int], num_classes: int, *, width: float = 0.5) -> ArenaNet:
    c = image_shape[0]
    a, b = max(1, round(96 * width)), max(1, round(192 * width))
    stages = [
        ("block1", _mlpconv(c, a, 5)),
        ("pool1", _pool()),
        ("block2", _mlpconv(a, b, 5)),
        ("pool2", _pool()),
        # The third mlpconv's final 1x1 class-map convolution is the head's linear layer.
        ("block3", _mlpconv(b, b, 3, ones=1)),
        (
            "head",
            nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(b, num_classes)),
        ),
    ]
    return ArenaNet(
        "nin", image_shape, num_classes, stages, feature_stages=("block1", "block2", "block3")
    )
