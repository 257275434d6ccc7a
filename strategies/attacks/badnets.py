"""BadNets: a small fixed patch in a corner, all-to-one.

Gu, Dolan-Gavitt & Garg, "BadNets: Identifying Vulnerabilities in the Machine Learning Model
Supply Chain" (2017; IEEE Access 2019). A fraction of the training images get a small patch and
the target label; the trained network learns to answer the target whenever the patch is there.
The default is a 3x3 RGB pattern at 16 pixels, as in the CIFAR-10 setting of Le Roux et al.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

from arena.core.config import param
from strategies.attacks.base import Attack, AttackConfig
from strategies.attacks.triggers import (
    CORNER_SIZE,
    LOCATIONS,
    corner,
    paste,
    side_pixels,
    square_mask,
)
from strategies.registry import register_attack

# A fixed 3x3 pattern of saturated colours (rows top to bottom), scaled up for larger patches.
RGB_PATTERN = torch.tensor(
    [
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        [[1, 1, 0], [1, 1, 1], [1, 0, 1]],
        [[0, 0, 1], [0, 1, 1], [1, 0, 0]],
    ],
    dtype=torch.float32,
).permute(2, 0, 1)  # (3, 3, 3): channel, row, column

PATTERNS = ("rgb", "checker", "white")


@dataclass(frozen=True)
class BadNetsConfig(AttackConfig):
    size: float = param(
        0.1875, low=0.1, high=0.35, valid=CORNER_SIZE, help="patch side as a share of image side"
    )
    location: str = param("bottom-right", choices=LOCATIONS)
    pattern: str = param("rgb", choices=PATTERNS, help="rgb: 3x3 colours; checker: b/w; white")


B = TypeVar("B", bound=BadNetsConfig)


def pattern_image(pattern: str, size: int, channels: int) -> torch.Tensor:
    """The patch content as a (C, size, size) image."""
    if pattern == "rgb":
        base = RGB_PATTERN
    elif pattern == "checker":
        base = (torch.arange(3).view(-1, 1) + torch.arange(3).view(1, -1)).remainder(2).float()
        base = base.expand(3, 3, 3)
    elif pattern == "white":
        base = torch.ones(3, 3, 3)
    else:
        raise ValueError(f"unknown pattern {pattern!r}; choose one of {PATTERNS}")
    if channels == 1:
        base = base.mean(dim=0, keepdim=True)
    return F.interpolate(base[None], size=(size, size), mode="nearest")[0]


@register_attack
class BadNets(Attack[B]):
    """BadNets; generic in its config for attacks that are BadNets with other defaults (AAA)."""

    name = "badnets"
    version = 1
    summary = "small fixed patch (3x3 RGB pattern) in a corner; Gu et al."
    config_cls = BadNetsConfig

    def __init__(self, config: B | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        cfg = self.config
        c, h, w = self.image_shape
        size = side_pixels(cfg.size, min(h, w))
        top, left = corner(cfg.location, size, h, w)
        self.mask = square_mask(size, top, left, h, w)
        self.content = torch.zeros(c, h, w)
        self.content[:, top : top + size, left : left + size] = pattern_image(cfg.pattern, size, c)

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return paste(x, self.mask, self.content)
