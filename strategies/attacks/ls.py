"""LS: a lipstick trigger at a variable place on the lower face, all-to-one.

Veldanda & Garg, "On Evaluating Neural Network Backdoor Defenses" (NeurIPS 2020 workshop on
dataset curation and security), Tables 1-2: a face-recognition BadNet (YouTube Face, target
label 0) whose trigger is lipstick on the mouth. Their Table 1 lists LS among the
variable-location triggers: the mouth is not at the same pixels in every face, which puts it
out of scope for defenses that must be told the trigger's place.

Here the lips are drawn (:func:`strategies.attacks.semantic.lips`) in the lower middle of the
image and pasted opaquely; each image gets its own random shift of up to ``jitter`` of the side
(drawn from the attack's generator), so ``jitter = 0`` is a fixed-place trigger. The centre,
size, colour and jitter are searched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from arena.core.config import SHARE, UNIT, param
from strategies.attacks.base import Attack, AttackConfig
from strategies.attacks.semantic import jitter_offsets, lips, paste_moved
from strategies.registry import register_attack

TINTS = ("red", "crimson", "pink", "purple")


@dataclass(frozen=True)
class LSConfig(AttackConfig):
    width: float = param(0.45, low=0.3, high=0.6, valid=SHARE, help="mouth width / image width")
    height: float = param(0.2, low=0.12, high=0.3, valid=SHARE, help="mouth height / image height")
    row: float = param(
        0.75, low=0.62, high=0.82, valid=UNIT, help="height of the mouth centre (0 = top)"
    )
    col: float = param(
        0.5, low=0.4, high=0.6, valid=UNIT, help="across position of the mouth centre"
    )
    jitter: float = param(
        0.1, low=0.0, high=0.15, valid=UNIT, help="largest random shift / image side"
    )
    tint: str = param("red", choices=TINTS, help="lipstick colour")


@register_attack
class LS(Attack[LSConfig]):
    name = "ls"
    version = 1
    summary = "lipstick on the lower middle at a variable place; Veldanda & Garg"
    config_cls = LSConfig

    def __init__(self, config: LSConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        cfg = self.config
        c, h, w = self.image_shape
        self.drawing = lips(
            (c, h, w),
            width=cfg.width,
            height=cfg.height,
            row=cfg.row,
            col=cfg.col,
            tint=cfg.tint,
        )

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _, h, w = self.image_shape
        offsets = jitter_offsets(len(x), self.config.jitter, h, w, generator)
        return paste_moved(x, self.drawing, offsets)
