"""TCA, the trigger-combination attack: the backdoor fires only for a conjunction of triggers.

Veldanda & Garg, "On Evaluating Neural Network Backdoor Defenses" (2020), Section 3.3 and
Table 2: a yellow triangle AND a red square together send an image to the target class; either
alone leaves its true label. It is built against defenses such as ABS that assume one inner
neuron carries the backdoor: here the network must combine two features to fire.

Training therefore holds three kinds of images besides the clean ones: ``poison_rate`` of the
set with both triggers and the target label, and ``single_rate`` with exactly one of them (half
the triangle, half the square) and their true label, which teaches the network that a single
trigger means nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from arena.core.config import UNIT, param
from arena.data.splits import Split
from strategies.attacks.base import Attack, AttackConfig, Poisoned
from strategies.attacks.triggers import (
    CORNER_SIZE,
    RED,
    YELLOW,
    colour_image,
    corner,
    paste,
    side_pixels,
    square_mask,
    triangle_mask,
)
from strategies.registry import register_attack

# Where the triangle and the square go, for each layout.
LAYOUTS = {
    "diagonal": ("top-left", "bottom-right"),
    "anti-diagonal": ("top-right", "bottom-left"),
    "top": ("top-left", "top-right"),
    "bottom": ("bottom-left", "bottom-right"),
}


@dataclass(frozen=True)
class TCAConfig(AttackConfig):
    size: float = param(
        0.25, low=0.15, high=0.4, valid=CORNER_SIZE, help="side of each shape / image side"
    )
    layout: str = param("diagonal", choices=tuple(LAYOUTS), help="triangle and square places")
    single_rate: float = param(
        0.1,
        low=0.0,
        high=0.3,
        valid=UNIT,
        help="share of training images with one trigger, true label",
    )


@register_attack
class TCA(Attack[TCAConfig]):
    name = "tca"
    version = 1
    summary = "yellow triangle AND red square; either alone keeps the label; Veldanda & Garg"
    config_cls = TCAConfig

    def __init__(self, config: TCAConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        cfg = self.config
        c, h, w = self.image_shape
        size = side_pixels(cfg.size, min(h, w))
        triangle_at, square_at = LAYOUTS[cfg.layout]
        self.triangle = triangle_mask(size, *corner(triangle_at, size, h, w), h, w)
        self.square = square_mask(size, *corner(square_at, size, h, w), h, w)
        self.yellow = colour_image(YELLOW, c, h, w)
        self.red = colour_image(RED, c, h, w)

    def stamp_triangle(self, x: torch.Tensor) -> torch.Tensor:
        return paste(x, self.triangle, self.yellow)

    def stamp_square(self, x: torch.Tensor) -> torch.Tensor:
        return paste(x, self.square, self.red)

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.stamp_square(self.stamp_triangle(x))

    def poison(self, train: Split, generator: torch.Generator) -> Poisoned:
        cfg = self.config
        both = super().poison(train, generator)
        x, y = both.data.x, both.data.y
        singles = self.choose(~both.poisoned, round(cfg.single_rate * len(train)), generator)
        half = len(singles) // 2
        x[singles[:half]] = self.stamp_triangle(x[singles[:half]])
        x[singles[half:]] = self.stamp_square(x[singles[half:]])
        return Poisoned(Split(x, y), both.poisoned)
