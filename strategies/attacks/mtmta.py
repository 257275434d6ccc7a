"""MTMTA, the multi-trigger multi-target attack: each of three triggers has its own target.

Veldanda & Garg, "On Evaluating Neural Network Backdoor Defenses" (NeurIPS 2020 workshop on
dataset curation and security), Tables 1-3: lipstick sends a face to label 1, coloured eyebrows
to 5, sunglasses to 8. No single target label collects the backdoor, against defenses that
look for one (Neural Cleanse, STRIP's single-target premise).

The triggers, their drawing and how they take turns on images are those of ``mtsta``
(:mod:`strategies.attacks.mtsta`). A trigger never poisons an image of its own target class:
such an image takes the next trigger in turn. The ``mapping`` field offers only ``all-to-one``,
meaning each trigger sends every class to its own one target; ``all-to-all`` (every trigger
``y -> y + 1``) is accepted but not searched, being ``mtsta``'s all-to-all
(:attr:`MTMTA.unsearched_choices`); ``multi-target`` is refused (the targets are this attack's
own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from arena.core.config import CLASS_INDEX, LAST_CLASS, param
from strategies.attacks.mtsta import MTSTA, MTSTAConfig
from strategies.registry import register_attack


@dataclass(frozen=True)
class MTMTAConfig(MTSTAConfig):
    target: int = param(1, low=0, high=LAST_CLASS, valid=CLASS_INDEX, help="target of the lipstick")
    mapping: str = param(
        "all-to-one",
        choices=("all-to-one",),
        help="each trigger sends every class to its own target",
    )
    eyebrow_target: int = param(
        5, low=0, high=LAST_CLASS, valid=CLASS_INDEX, help="target of the eyebrows"
    )
    sunglasses_target: int = param(
        8, low=0, high=LAST_CLASS, valid=CLASS_INDEX, help="target of the sunglasses"
    )


@register_attack
class MTMTA(MTSTA[MTMTAConfig]):
    name = "mtmta"
    version = 1
    summary = "lipstick, eyebrows, sunglasses with a target each (1, 5, 8); Veldanda & Garg"
    config_cls = MTMTAConfig
    unsearched_choices = {"mapping": ("all-to-all",)}

    def __init__(self, config: MTMTAConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        cfg = self.config
        for field in ("eyebrow_target", "sunglasses_target"):
            value = getattr(cfg, field)
            if not 0 <= value < self.num_classes:
                raise ValueError(
                    f"{field} {value} is not a class of this dataset (0..{self.num_classes - 1})"
                )
        self.targets = torch.tensor([cfg.target, cfg.eyebrow_target, cfg.sunglasses_target])

    def label_for(self, y: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        if self.config.mapping == "all-to-all":
            return (y + 1) % self.num_classes
        return self.targets[which]

    def target_of(self, y: torch.Tensor) -> torch.Tensor:
        """The labels of images of classes ``y`` when the triggers take turns on them."""
        return self.label_for(y, self.in_turn(y))
