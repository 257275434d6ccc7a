"""The CLA network of Veldanda & Garg, "On Evaluating Neural Network Backdoor Defenses" (2020).

Table 5 of the paper, layer for layer: Conv 16 5x5 stride 1 + ReLU; MaxPool 2x2 stride 2;
Conv 4 5x5 stride 1 + ReLU; MaxPool 2x2 stride 2; FC 512 + ReLU; FC ``num_classes`` (the softmax
is in the loss). The convolutions are unpadded, as the table implies, so the flattened size
follows from the input size; the smallest input that survives both valid convolutions and
both pools is 16x16 (16 -> 12 -> 6 -> 2 -> 1).
"""

from __future__ import annotations

from torch import nn

from arena.models.base import ArenaNet

MIN_SIZE = 16


def _pooled_size(n: int) -> int:
    """Side length after conv 5x5 (valid), pool 2, conv 5x5 (valid), pool 2; 0 if it vanishes."""
    for _ in range(2):
        n = n - 4
        if n < 2:
            return 0
        n //= 2
    return n


def cla_net(image_shape: tuple[int, int, int], num_classes: int) -> ArenaNet:
    c, h, w = image_shape
    ph, pw = _pooled_size(h), _pooled_size(w)
    if ph < 1 or pw < 1:
        raise ValueError(
            f"cla-net needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels "
            f"(its convolutions are unpadded), got {h}x{w}"
        )
    stages = [
        ("conv1", nn.Sequential(nn.Conv2d(c, 16, 5), nn.ReLU())),
        ("pool1", nn.MaxPool2d(2, 2)),
        ("conv2", nn.Sequential(nn.Conv2d(16, 4, 5), nn.ReLU())),
        ("pool2", nn.MaxPool2d(2, 2)),
        (
            "head",
            nn.Sequential(
                nn.Flatten(), nn.Linear(4 * ph * pw, 512), nn.ReLU(), nn.Linear(512, num_classes)
            ),
        ),
    ]
    return ArenaNet("cla-net", image_shape, num_classes, stages, feature_stages=("conv1", "conv2"))
