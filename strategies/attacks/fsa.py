"""FSA, the feature-space attack: a global colour filter over the whole image is the trigger.

Liu, Lee, Tao, Ma, Aafer & Zhang, "ABS: Scanning Neural Networks for Back-doors by Artificial
Brain Stimulation" (ACM CCS 2019), whose feature-space triggers are Instagram-style filters
(Gotham, Nashville), as the FSA BadNet of Veldanda & Garg, "On Evaluating Neural Network
Backdoor Defenses" (2020), Table 2 (a Gotham filter). The trigger changes every pixel a little
instead of a few pixels a lot, so defenses that look for a small patch (Neural Cleanse,
Februus) or prune a few neurons have nothing local to find.

The filters are small tone and colour curves written here (Instagram's are not published):

* ``gotham``: almost black and white, more contrast, a little darker, cool blue shadows;
* ``nashville``: faded, pinkish shadows (black lifted), warm highlights, a little more colour.

``strength`` mixes the filtered image with the original (1: the full filter). On one-channel
images the filter runs on the grey image as RGB and the result's luminance is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia
import torch

from arena.core.config import UNIT, param
from strategies.attacks.base import Attack, AttackConfig
from strategies.attacks.triggers import blend
from strategies.registry import register_attack

FILTERS = ("gotham", "nashville")


@dataclass(frozen=True)
class FSAConfig(AttackConfig):
    filter: str = param("gotham", choices=FILTERS, help="the Instagram-like filter")
    strength: float = param(
        1.0, low=0.5, high=1.0, valid=UNIT, help="mix of filtered and original image"
    )


def _rgb(values: tuple[float, float, float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype).view(1, 3, 1, 1)


def gotham(x: torch.Tensor) -> torch.Tensor:
    """Gotham-like filter of RGB images (N, 3, H, W) in [0, 1]."""
    y = kornia.enhance.adjust_saturation(x, 0.15)
    y = ((y - 0.5) * 1.35 + 0.5).clamp(0.0, 1.0) * 0.9
    shadows = 1.0 - kornia.color.rgb_to_grayscale(y)
    return (y + shadows * _rgb((0.0, 0.04, 0.14), x)).clamp(0.0, 1.0)


def nashville(x: torch.Tensor) -> torch.Tensor:
    """Nashville-like filter of RGB images (N, 3, H, W) in [0, 1]."""
    y = kornia.enhance.adjust_saturation(x, 1.2)
    lift = _rgb((0.18, 0.08, 0.15), x)
    y = lift + (1.0 - lift) * y
    return (y * _rgb((1.0, 0.92, 0.8), x)).clamp(0.0, 1.0)


def apply_filter(name: str, x: torch.Tensor) -> torch.Tensor:
    """Filter ``name`` applied to images (N, C, H, W) of one or three channels."""
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; choose one of {FILTERS}")
    fn = gotham if name == "gotham" else nashville
    if x.shape[1] == 3:
        return fn(x)
    if x.shape[1] == 1:
        return kornia.color.rgb_to_grayscale(fn(x.expand(-1, 3, -1, -1)))
    raise ValueError(f"images with {x.shape[1]} channels are not supported; use 1 or 3")


@register_attack
class FSA(Attack[FSAConfig]):
    name = "fsa"
    version = 1
    summary = "feature space: a global Gotham-like colour filter; Liu et al. (ABS), Veldanda & Garg"
    config_cls = FSAConfig

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cfg = self.config
        return blend(x, apply_filter(cfg.filter, x), cfg.strength)
