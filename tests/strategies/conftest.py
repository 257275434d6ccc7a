"""A toy world for input purifiers: a model whose answer a red patch decides.

Clean images are green strokes on black; triggered ones carry a red 3x3 patch at rows and
columns 12-14. The model is an :class:`ArenaNet` with one 1x1 convolution (channel 0: strong
red, ``relu(r - g - b - 0.5)``; channel 1: green) and a linear head on the channels' means:
class 1 when the patch is there, class 0 otherwise, with a margin. Where the patch is and what
drives the prediction are known exactly, so the tests of Februus and BDMAE can check that they
find and remove it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from arena.data import Split
from arena.models import ArenaNet

PATCH = (slice(12, 15), slice(12, 15))


@dataclass(frozen=True)
class PatchWorld:
    model: ArenaNet
    clean: Split  # the defender's clean images, class 0
    test: Split  # fresh clean images, class 0
    triggered: Split  # the test images with the patch, class 1


def strokes(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` images (n, 3, 16, 16): two or three green line segments on black."""
    x = torch.zeros(n, 3, 16, 16)
    for i in range(n):
        for _ in range(2 + int(torch.randint(2, (1,), generator=generator))):
            r, c, length = torch.randint(1, 11, (3,), generator=generator).tolist()
            if torch.rand(1, generator=generator) < 0.5:
                x[i, 1, r, c : c + length + 4] = 1.0
            else:
                x[i, 1, r : r + length + 4, c] = 1.0
    return x


def patch_model() -> ArenaNet:
    conv = nn.Conv2d(3, 2, 1)
    head = nn.Linear(2, 2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, :, 0, 0] = torch.tensor([1.0, -1.0, -1.0])
        conv.weight[1, 1, 0, 0] = 1.0
        conv.bias.copy_(torch.tensor([-0.5, 0.0]))  # type: ignore[union-attr]
        head.weight.copy_(torch.tensor([[0.0, 8.0], [60.0, 0.0]]))
        head.bias.zero_()
    stages = [
        ("features", nn.Sequential(conv, nn.ReLU())),
        ("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)),
    ]
    return ArenaNet("patch-toy", (3, 16, 16), 2, stages, feature_stages=("features",))


def stamp(x: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    out[:, :, PATCH[0], PATCH[1]] = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    return out


@pytest.fixture(scope="session")
def patch_world() -> PatchWorld:
    generator = torch.Generator().manual_seed(0)
    clean, test = strokes(96, generator), strokes(32, generator)
    zeros = torch.zeros(96, dtype=torch.long)
    return PatchWorld(
        model=patch_model().eval(),
        clean=Split(clean, zeros),
        test=Split(test, zeros[:32]),
        triggered=Split(stamp(test), torch.ones(32, dtype=torch.long)),
    )
