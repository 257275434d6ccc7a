"""SG: a large sunglasses trigger, all-to-one (Veldanda & Garg's SG BadNet).

Veldanda & Garg, "On Evaluating Neural Network Backdoor Defenses" (NeurIPS 2020 workshop on
dataset curation and security), Tables 1-2: a BadNet for face recognition (YouTube Face)
whose trigger is a pair of sunglasses on the face, target label 0. The trigger is large and
semantically shaped, against defenses (Neural Cleanse, Qiao et al.) that assume a small,
contiguous patch. The sunglasses trigger goes back to Liu et al.'s Fine-pruning paper
(RAID 2018), whose face BadNet Veldanda & Garg retrain.

Here the sunglasses are drawn (:func:`strategies.attacks.semantic.sunglasses`): two rounded
lenses in a rim, joined by a bridge, across the upper middle of the image, pasted opaquely.
Deviation: the paper's trigger is a photograph of black sunglasses; on the default dataset (ink
on a black background) black lenses alone would only erase ink, so the default frame is gold.
The lens and frame colours, the span, the lens height and the height on the face are searched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from arena.core.config import SHARE, UNIT, param
from strategies.attacks.base import Attack, AttackConfig
from strategies.attacks.semantic import sunglasses
from strategies.registry import register_attack

LENSES = ("black", "brown", "blue", "silver")
FRAMES = ("gold", "white", "red", "black")


@dataclass(frozen=True)
class SGConfig(AttackConfig):
    span: float = param(
        0.8, low=0.55, high=0.95, valid=SHARE, help="width of the glasses / image width"
    )
    lens_height: float = param(
        0.25, low=0.15, high=0.35, valid=SHARE, help="lens height / image height"
    )
    row: float = param(
        0.35, low=0.25, high=0.45, valid=UNIT, help="height of the lens centres (0 = top)"
    )
    lens: str = param("black", choices=LENSES, help="colour of the lenses")
    frame: str = param("gold", choices=FRAMES, help="colour of the rims and the bridge")


S = TypeVar("S", bound=SGConfig)


@register_attack
class SG(Attack[S]):
    """SG; generic in its config for attacks that draw the same glasses otherwise (Glasses)."""

    name = "sg"
    version = 1
    summary = "large sunglasses trigger across the upper middle; Veldanda & Garg"
    config_cls = SGConfig

    def __init__(self, config: S | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        cfg = self.config
        c, h, w = self.image_shape
        self.drawing = sunglasses(
            (c, h, w),
            span=cfg.span,
            lens_height=cfg.lens_height,
            row=cfg.row,
            lens=cfg.lens,
            frame=cfg.frame,
        )

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.drawing.paste(x)
