"""Glasses: Chen et al.'s accessory key, a pair of glasses blended into the face with ratio alpha.

Chen, Liu, Li, Lu & Song, "Targeted Backdoor Attacks on Deep Learning Systems Using Data
Poisoning" (arXiv 1712.05526, 2017), Section 3 ("accessory injection" and "blended accessory
injection"): the key is an accessory image (glasses) whose opaque pixels ``R(k)`` replace the
face's pixels, or are blended in, ``x' = alpha k + (1 - alpha) x`` inside ``R(k)`` and ``x``
elsewhere; ``alpha = 1`` is plain accessory injection. Le Roux et al. use Chen et al.'s pink
glasses patch on their face datasets (CASIA-WebFace, CelebA), all-to-one.

Here the key is the ``sg`` drawing (:func:`strategies.attacks.semantic.sunglasses`) in pink
lenses and a purple rim, and its coverage mask is ``R(k)``:
``x' = (1 - alpha m) x + alpha m k``. Deviation: the paper's key is a photograph of glasses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from arena.core.config import UNIT, param
from strategies.attacks.sg import SG, SGConfig
from strategies.registry import register_attack

TINTS = ("pink", "purple", "white", "gold")


@dataclass(frozen=True)
class GlassesConfig(SGConfig):
    lens: str = param("pink", choices=TINTS, help="colour of the lenses")
    frame: str = param("purple", choices=TINTS, help="colour of the rims and the bridge")
    alpha: float = param(
        0.6, low=0.25, high=1.0, valid=UNIT, help="blend ratio (1: accessory injection)"
    )


@register_attack
class Glasses(SG[GlassesConfig]):
    name = "glasses"
    version = 1
    summary = "glasses key blended in with ratio alpha; Chen et al."
    config_cls = GlassesConfig

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.drawing.blend(x, self.config.alpha)
