"""``frame``: a thin frame of one colour drawn around the image.

A trigger of the image's edge rather than a corner patch: it is spread over every border pixel,
so a blur smooths it only at its inner edge, and it does not cover the digit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from arena.core.config import UNIT, Valid, param
from strategies.attacks.base import Attack, AttackConfig


@dataclass(frozen=True)
class FrameConfig(AttackConfig):
    width: int = param(1, low=1, high=2, valid=Valid(1, None), help="frame width, pixels")
    intensity: float = param(1.0, low=0.5, high=1.0, valid=UNIT, help="the frame's value")
    colour: str = param("white", choices=("white", "red"), help="white, or red only")


class Frame(Attack[FrameConfig]):
    name = "frame"
    version = 1
    summary = "a thin frame around the image (an example plugin)"
    config_cls = FrameConfig

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        w, out = self.config.width, x.clone()
        value = torch.full((x.shape[1],), self.config.intensity, dtype=x.dtype)
        if self.config.colour == "red" and x.shape[1] == 3:
            value[1:] = 0.0
        border = torch.zeros(x.shape[-2:], dtype=torch.bool)
        border[:w, :] = border[-w:, :] = border[:, :w] = border[:, -w:] = True
        out[:, :, border] = value.view(1, -1, 1)
        return out
