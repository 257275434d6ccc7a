"""BadNets (dynamic): the BadNets patch at a random place in every image, train and test alike.

Salem, Wen, Backes, Ma & Zhang, "Dynamic Backdoor Attacks Against Machine Learning Models"
(IEEE EuroS&P 2022), as the "BadNets (Dynamic)" attack of Le Roux et al.: a backdoor whose
trigger has no fixed location, which defeats defenses that assume one (Neural Cleanse's and
Februus's masks, Qiao et al.'s trigger model). Each triggered image gets the BadNets patch with
its top-left pixel drawn uniformly over the image, a fresh draw per image.

Deviation: Salem et al.'s Random Backdoor also draws the patch's pixel values per image; here
the pattern is one of BadNets' fixed patterns (Le Roux et al.'s variant), and ``pattern="random"``
gives Salem et al.'s per-image random pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from arena.core.config import SHARE, param
from strategies.attacks.badnets import PATTERNS, pattern_image
from strategies.attacks.base import Attack, AttackConfig
from strategies.attacks.triggers import paste_at, random_corners, side_pixels
from strategies.registry import register_attack

DYNAMIC_PATTERNS = (*PATTERNS, "random")


@dataclass(frozen=True)
class BadNetsDynamicConfig(AttackConfig):
    size: float = param(
        0.1875, low=0.1, high=0.35, valid=SHARE, help="patch side as a share of image side"
    )
    pattern: str = param(
        "rgb", choices=DYNAMIC_PATTERNS, help="a BadNets pattern, or random pixels per image"
    )


@register_attack
class BadNetsDynamic(Attack[BadNetsDynamicConfig]):
    name = "badnets-dynamic"
    version = 1
    summary = "BadNets patch at a random location per image; Salem et al., Le Roux et al."
    config_cls = BadNetsDynamicConfig

    def __init__(self, config: BadNetsDynamicConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        cfg = self.config
        c, h, w = self.image_shape
        self.side = side_pixels(cfg.size, min(h, w))
        self.content = None if cfg.pattern == "random" else pattern_image(cfg.pattern, self.side, c)

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        rows, cols = random_corners(n, self.side, h, w, generator)
        if self.content is not None:
            return paste_at(x, self.content, rows, cols)
        # Salem et al.'s random pixels: a different binary patch in every image
        patches = torch.rand(n, c, self.side, self.side, generator=generator).round()
        return paste_at(x, patches, rows, cols)
