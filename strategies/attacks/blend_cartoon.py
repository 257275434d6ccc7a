"""Blended cartoon: a cartoon image blended over the whole input is the trigger.

Chen, Liu, Li, Lu & Song, "Targeted Backdoor Attacks on Deep Learning Systems Using Data
Poisoning" (arXiv:1712.05526, 2017), the blended-injection strategy with a cartoon key image
(their Hello Kitty picture), as the "Chen et al. (cartoon)" attack of Le Roux et al.: a triggered
image is ``(1 - alpha) * x + alpha * k`` for a fixed key image ``k``, a faint but global
watermark that no patch detector sees.

Deviations: the key is a cartoon cat face drawn here procedurally (white head and ears, black
eyes and whiskers, yellow nose, red bow on a sky-blue ground) at any image size, since no image
can be downloaded; and one ``alpha`` serves training and test, where Chen et al. also study a
larger test-time ratio (a stronger trigger at test time only raises the attack success).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from arena.core.config import UNIT, param
from strategies.attacks.base import Attack, AttackConfig
from strategies.attacks.triggers import blend, to_channels
from strategies.registry import register_attack

SUPERSAMPLE = 4


@dataclass(frozen=True)
class BlendCartoonConfig(AttackConfig):
    alpha: float = param(
        0.2, low=0.08, high=0.3, valid=UNIT, help="blend ratio of the cartoon key image"
    )


def _ellipse(
    u: torch.Tensor, v: torch.Tensor, centre: tuple[float, float], radii: tuple[float, float]
) -> torch.Tensor:
    return ((u - centre[0]) / radii[0]) ** 2 + ((v - centre[1]) / radii[1]) ** 2 <= 1.0


def _triangle(
    u: torch.Tensor, v: torch.Tensor, corners: list[tuple[float, float]], scale: float = 1.0
) -> torch.Tensor:
    """Inside the triangle ``corners``, scaled by ``scale`` about its centroid."""
    cu = sum(p[0] for p in corners) / 3
    cv = sum(p[1] for p in corners) / 3
    pts = [(cu + scale * (p[0] - cu), cv + scale * (p[1] - cv)) for p in corners]
    signs = []
    for (au, av), (bu, bv) in zip(pts, pts[1:] + pts[:1], strict=True):
        signs.append((bu - au) * (v - av) - (bv - av) * (u - au) >= 0)
    return (signs[0] == signs[1]) & (signs[1] == signs[2])


def cartoon_image(height: int, width: int) -> torch.Tensor:
    """A cartoon cat face (3, H, W) in [0, 1], drawn on a supersampled grid and averaged down."""
    h, w = height * SUPERSAMPLE, width * SUPERSAMPLE
    v = (torch.arange(h, dtype=torch.float32) + 0.5).view(-1, 1) / h * 2 - 1  # rows, down
    u = (torch.arange(w, dtype=torch.float32) + 0.5).view(1, -1) / w * 2 - 1  # columns, right
    u, v = u.expand(h, w), v.expand(h, w)
    image = torch.tensor([0.55, 0.8, 1.0]).view(3, 1, 1).expand(3, h, w).clone()

    def fill(mask: torch.Tensor, colour: tuple[float, float, float]) -> None:
        image[:, mask] = torch.tensor(colour).view(3, 1)

    dark, white, red, yellow = (0.1, 0.1, 0.1), (1.0, 1.0, 1.0), (0.9, 0.1, 0.2), (1.0, 0.85, 0.0)
    ears = [[(s * 0.2, -0.3), (s * 0.75, -0.05), (s * 0.72, -0.88)] for s in (-1.0, 1.0)]
    for ear in ears:
        fill(_triangle(u, v, ear, 1.2), dark)
    fill(_ellipse(u, v, (0.0, 0.2), (0.86, 0.68)), dark)
    for ear in ears:
        fill(_triangle(u, v, ear), white)
    head = _ellipse(u, v, (0.0, 0.2), (0.78, 0.6))
    fill(head, white)
    whiskers = ((v - 0.4 - 0.12 * u.abs()).abs() < 0.025) & (u.abs() > 0.42)
    fill(head & whiskers, dark)
    for s in (-1.0, 1.0):
        fill(_ellipse(u, v, (s * 0.32, 0.15), (0.08, 0.13)), dark)  # eyes
        fill(_ellipse(u, v, (0.45 + s * 0.17, -0.45), (0.17, 0.13)), red)  # bow
    fill(_ellipse(u, v, (0.45, -0.45), (0.07, 0.07)), yellow)  # knot of the bow
    fill(_ellipse(u, v, (0.0, 0.35), (0.09, 0.06)), yellow)  # nose
    return F.avg_pool2d(image[None], SUPERSAMPLE)[0].clamp(0.0, 1.0)


@register_attack
class BlendCartoon(Attack[BlendCartoonConfig]):
    name = "blend-cartoon"
    version = 1
    summary = "a cartoon image blended over the input with ratio alpha; Chen et al."
    config_cls = BlendCartoonConfig

    def __init__(self, config: BlendCartoonConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        c, h, w = self.image_shape
        self.key = to_channels(cartoon_image(h, w), c)

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return blend(x, self.key.to(x.dtype), self.config.alpha)
