"""The default network: a small, fast CNN sized for 16 to 64 pixel inputs.

Two conv blocks (conv, batch-norm, ReLU, 2x2 max-pool) and a two-layer classifier. It reaches
about 98% on 16x16 digits in a few seconds on two CPU cores, which is what a game that trains
hundreds of BadNets needs.
"""

from __future__ import annotations

from torch import nn

from arena.models.base import ArenaNet


def small_cnn(image_shape: tuple[int, int, int], num_classes: int) -> ArenaNet:
    c, h, w = image_shape
    width = 32
    pooled = (h // 4) * (w // 4)
    stages = [
        (
            "conv1",
            nn.Sequential(
                nn.Conv2d(c, width // 2, 3, padding=1), nn.BatchNorm2d(width // 2), nn.ReLU()
            ),
        ),
        ("pool1", nn.MaxPool2d(2)),
        (
            "conv2",
            nn.Sequential(
                nn.Conv2d(width // 2, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()
            ),
        ),
        ("pool2", nn.MaxPool2d(2)),
        (
            "head",
            nn.Sequential(
                nn.Flatten(), nn.Linear(width * pooled, 64), nn.ReLU(), nn.Linear(64, num_classes)
            ),
        ),
    ]
    return ArenaNet(
        "small-cnn", image_shape, num_classes, stages, feature_stages=("conv1", "conv2")
    )
