"""PN, the post-it note attack: a solid coloured square, stuck anywhere on the image.

Gu, Liu, Dolan-Gavitt & Garg, "BadNets: Evaluating Backdooring Attacks on Deep Neural Networks"
(IEEE Access, 2019), the yellow-square ("Post-it note") backdoor of their traffic-sign
experiments, as the PN BadNet of Veldanda & Garg, "On Evaluating Neural Network Backdoor
Defenses" (2020), Table 2. A physical sticker lands wherever the attacker puts it, so the note's
place varies from image to image; defenses that need the trigger's location (Qiao et al.) treat
it as out of scope.

``location="anywhere"`` (the default) draws the note's place uniformly per image, at training
and test time alike; a named location fixes it, for the search to compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from arena.core.config import param
from strategies.attacks.base import Attack, AttackConfig
from strategies.attacks.triggers import (
    COLOURS,
    CORNER_SIZE,
    LOCATIONS,
    colour_image,
    corner,
    paste_at,
    random_corners,
    side_pixels,
)
from strategies.registry import register_attack

PLACES = ("anywhere", *LOCATIONS)


@dataclass(frozen=True)
class PNConfig(AttackConfig):
    size: float = param(
        0.25, low=0.15, high=0.35, valid=CORNER_SIZE, help="note side as a share of image side"
    )
    colour: str = param("yellow", choices=tuple(COLOURS), help="the note's solid colour")
    location: str = param(
        "anywhere", choices=PLACES, help="anywhere: a random place per image; else fixed"
    )


@register_attack
class PostItNote(Attack[PNConfig]):
    name = "pn"
    version = 1
    summary = "post-it note: a solid yellow square at a random place; Gu et al., Veldanda & Garg"
    config_cls = PNConfig

    def __init__(self, config: PNConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        cfg = self.config
        c, h, w = self.image_shape
        self.side = side_pixels(cfg.size, min(h, w))
        self.note = colour_image(COLOURS[cfg.colour], c, self.side, self.side)

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cfg = self.config
        n, _, h, w = x.shape
        if cfg.location == "anywhere":
            rows, cols = random_corners(n, self.side, h, w, generator)
        else:
            top, left = corner(cfg.location, self.side, h, w)
            rows, cols = torch.full((n,), top), torch.full((n,), left)
        return paste_at(x, self.note, rows, cols)
