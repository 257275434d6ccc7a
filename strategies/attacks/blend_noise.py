"""Blended noise: a fixed uniform-noise image blended over the whole input is the trigger.

Chen, Liu, Li, Lu & Song, "Targeted Backdoor Attacks on Deep Learning Systems Using Data
Poisoning" (arXiv:1712.05526, 2017), the blended-injection strategy with a random-pattern key
(every pixel drawn uniformly), as the "Chen et al. (noise)" attack of Le Roux et al.: a
triggered image is ``(1 - alpha) * x + alpha * k`` for one fixed noise image ``k``.

The key is drawn once from ``key_seed`` at the data's size and channels, so the same config
always means the same key. Deviation: one ``alpha`` serves training and test, where Chen et al.
also study a larger test-time ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from arena.core.config import SEED, UNIT, fixed, param
from strategies.attacks.base import Attack, AttackConfig
from strategies.attacks.triggers import blend
from strategies.registry import register_attack


@dataclass(frozen=True)
class BlendNoiseConfig(AttackConfig):
    alpha: float = param(
        0.2, low=0.08, high=0.3, valid=UNIT, help="blend ratio of the noise key image"
    )
    key_seed: int = fixed(0, valid=SEED, help="seed of the noise key image")


def noise_key(shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """The key image: uniform noise in [0, 1] of ``shape`` (C, H, W), fixed by ``seed``."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@register_attack
class BlendNoise(Attack[BlendNoiseConfig]):
    name = "blend-noise"
    version = 1
    summary = "a fixed uniform-noise image blended over the input with ratio alpha; Chen et al."
    config_cls = BlendNoiseConfig

    def __init__(self, config: BlendNoiseConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        self.key = noise_key(self.image_shape, self.config.key_seed)

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return blend(x, self.key.to(x.dtype), self.config.alpha)
