"""Semantic triggers drawn procedurally: sunglasses, glasses, lipstick and eyebrows.

Veldanda & Garg's face BadNets (SG, LS, MTSTA, MTMTA) and Chen et al.'s glasses key use large
triggers shaped like things a face can wear. No image file can be downloaded here, so each shape
is drawn from a few analytic primitives (superellipses, rings, bars, arcs) on the image grid.

Every size and place is a share of the image side (``row`` 0 is the top edge, 1 the bottom), so
one config draws the same trigger at 16 and at 224 pixels; strokes are at least one pixel wide.
Shapes are rendered with ``SUPERSAMPLE`` x ``SUPERSAMPLE`` samples per pixel, so a drawing's
mask holds each pixel's coverage in [0, 1] and edges stay smooth at every size. On one-channel
data a colour becomes its luminance.

The face layout follows a frontal face: eyebrows near the top, the eyes (where the glasses sit)
in the upper middle, the mouth in the lower middle. On digits the same relative places hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from strategies.attacks.triggers import colour_image, paste

SUPERSAMPLE = 4

COLOURS: dict[str, tuple[float, float, float]] = {
    "black": (0.05, 0.05, 0.05),
    "white": (1.0, 1.0, 1.0),
    "silver": (0.75, 0.75, 0.8),
    "gold": (1.0, 0.78, 0.1),
    "brown": (0.5, 0.28, 0.1),
    "blue": (0.15, 0.35, 1.0),
    "green": (0.1, 0.85, 0.2),
    "red": (0.9, 0.05, 0.1),
    "crimson": (0.65, 0.0, 0.2),
    "pink": (1.0, 0.45, 0.7),
    "purple": (0.55, 0.1, 0.75),
}

EYE_SPACING = 0.54
"""Distance between the two eye centres, as a share of the glasses' span."""


@dataclass(frozen=True)
class Drawing:
    """A drawn trigger: ``mask`` (1, H, W), each pixel's coverage in [0, 1], and the colours
    ``content`` (C, H, W) that the mask lays on the image."""

    mask: torch.Tensor
    content: torch.Tensor

    def paste(self, x: torch.Tensor) -> torch.Tensor:
        """The trigger laid over images ``x`` (N, C, H, W): ``(1 - m) x + m c``."""
        return paste(x, self.mask, self.content)

    def blend(self, x: torch.Tensor, alpha: float) -> torch.Tensor:
        """Chen et al.'s blended injection inside the mask: ``(1 - alpha m) x + alpha m c``."""
        return paste(x, alpha * self.mask, self.content)

    def shifted(self, rows: int, cols: int) -> Drawing:
        """The drawing moved by whole pixels (down, right); what leaves the image is lost."""
        return Drawing(shift(self.mask, rows, cols), shift(self.content, rows, cols))


def shift(image: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``image`` (..., H, W) translated by ``rows`` down and ``cols`` right, zeros coming in."""
    h, w = image.shape[-2:]
    if abs(rows) >= h or abs(cols) >= w:
        return torch.zeros_like(image)
    padded = F.pad(image, (abs(cols), abs(cols), abs(rows), abs(rows)))
    top, left = abs(rows) - rows, abs(cols) - cols
    return padded[..., top : top + h, left : left + w]


def colour(name: str) -> tuple[float, float, float]:
    if name not in COLOURS:
        raise ValueError(f"unknown colour {name!r}; choose one of {tuple(COLOURS)}")
    return COLOURS[name]


def sample_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative coordinates ``(u, v)`` in [0, 1] (across, down) of every sub-pixel sample,
    each (H * SUPERSAMPLE, W * SUPERSAMPLE)."""
    s = SUPERSAMPLE
    v = (torch.arange(height * s, dtype=torch.float32) + 0.5) / (height * s)
    u = (torch.arange(width * s, dtype=torch.float32) + 0.5) / (width * s)
    return u.view(1, -1).expand(height * s, -1), v.view(-1, 1).expand(-1, width * s)


def coverage(inside: torch.Tensor) -> torch.Tensor:
    """The (1, H, W) share of each pixel's samples that ``inside`` (H*S, W*S) holds."""
    return F.avg_pool2d(inside.float()[None, None], SUPERSAMPLE)[0]


def stroke(fraction: float, side: int) -> float:
    """A stroke width as a share of the side, at least one pixel."""
    return max(fraction, 1.0 / side)


def superellipse(
    u: torch.Tensor,
    v: torch.Tensor,
    centre: tuple[float, float],
    radii: tuple[float, float],
    power: float = 2.0,
) -> torch.Tensor:
    """``|du / a|^p + |dv / b|^p <= 1``: an ellipse for p = 2, a rounded box for larger p."""
    (cu, cv), (a, b) = centre, radii
    return ((u - cu).abs() / a) ** power + ((v - cv).abs() / b) ** power <= 1.0


def layers(
    shape: tuple[int, int, int], parts: list[tuple[torch.Tensor, tuple[float, float, float]]]
) -> Drawing:
    """A drawing from (coverage, colour) parts that share no sub-pixel sample: the mask is their
    total coverage and each pixel's colour their coverage-weighted mean, so that pasting gives
    exactly the supersampled picture."""
    c, h, w = shape
    mask, paint = torch.zeros(1, h, w), torch.zeros(c, h, w)
    for cover, rgb in parts:
        mask = mask + cover
        paint = paint + cover * colour_image(rgb, c, h, w)
    return Drawing(mask.clamp(max=1.0), paint / mask.clamp(min=1e-6))


def glasses_masks(
    height: int, width: int, *, span: float, lens_height: float, row: float, frame: float = 0.06
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coverage (1, H, W) of the lenses and of the frame (rims and bridge) of a pair of glasses
    centred across the image at ``row``, ``span`` wide, lenses ``lens_height`` tall."""
    u, v = sample_grid(height, width)
    t_u, t_v = stroke(frame, width), stroke(frame, height)
    a, b = span * (1 - EYE_SPACING) / 2 - t_u, lens_height / 2
    offset = span * EYE_SPACING / 2
    lenses = torch.zeros_like(u, dtype=torch.bool)
    rims = torch.zeros_like(lenses)
    for cu in (0.5 - offset, 0.5 + offset):
        lenses |= superellipse(u, v, (cu, row), (a, b), power=3.0)
        rims |= superellipse(u, v, (cu, row), (a + t_u, b + t_v), power=3.0)
    bridge_row = row - 0.45 * b
    bridge = ((v - bridge_row).abs() <= t_v / 2) & ((u - 0.5).abs() <= offset)
    lens_cover = coverage(lenses)
    frame_cover = coverage((rims & ~lenses) | (bridge & ~lenses))
    return lens_cover, frame_cover


def sunglasses(
    shape: tuple[int, int, int],
    *,
    span: float,
    lens_height: float,
    row: float,
    lens: str,
    frame: str,
) -> Drawing:
    """Sunglasses: two ``lens``-coloured lenses in a ``frame``-coloured rim, joined by a bridge."""
    _, h, w = shape
    lens_cover, frame_cover = glasses_masks(h, w, span=span, lens_height=lens_height, row=row)
    return layers(shape, [(lens_cover, colour(lens)), (frame_cover, colour(frame))])


def lips(
    shape: tuple[int, int, int],
    *,
    width: float,
    height: float,
    row: float,
    col: float,
    tint: str,
) -> Drawing:
    """Painted lips centred at (``row``, ``col``): an ellipse with a notch at the top centre
    (the cupid's bow) and a thin parting between the upper and the lower lip."""
    _, h, w = shape
    u, v = sample_grid(h, w)
    a, b = width / 2, height / 2
    mouth = superellipse(u, v, (col, row), (a, b))
    bow = superellipse(u, v, (col, row - b), (0.18 * a, 0.35 * b))
    parting = ((v - row).abs() <= 0.06 * height) & ((u - col).abs() <= 0.8 * a)
    return layers(shape, [(coverage(mouth & ~bow & ~parting), colour(tint))])


def eyebrows(
    shape: tuple[int, int, int], *, span: float, row: float, tint: str, thickness: float = 0.07
) -> Drawing:
    """Two arched strokes over the eyes (placed as :func:`glasses_masks` places the lenses),
    their tops at ``row``."""
    _, h, w = shape
    u, v = sample_grid(h, w)
    half = span * (1 - EYE_SPACING) / 2
    t, arch = stroke(thickness, h), 0.25 * half
    inside = torch.zeros_like(u, dtype=torch.bool)
    for cu in (0.5 - span * EYE_SPACING / 2, 0.5 + span * EYE_SPACING / 2):
        x = ((u - cu) / half).clamp(-1.0, 1.0)
        centre_line = row + t / 2 + arch * x * x
        inside |= ((u - cu).abs() <= half) & ((v - centre_line).abs() <= t / 2)
    return layers(shape, [(coverage(inside), colour(tint))])


def jitter_offsets(
    count: int, jitter: float, height: int, width: int, generator: torch.Generator
) -> torch.Tensor:
    """(N, 2) whole-pixel shifts (rows, cols), uniform within ``jitter`` of the side."""
    limit = torch.tensor([jitter * height, jitter * width])
    draw = (2 * torch.rand(count, 2, generator=generator) - 1) * limit
    return draw.round().long()


def paste_moved(x: torch.Tensor, drawing: Drawing, offsets: torch.Tensor) -> torch.Tensor:
    """Each image ``x[i]`` with ``drawing`` moved by ``offsets[i]`` pasted over it."""
    out = x.clone()
    for shift_rc in offsets.unique(dim=0):
        chosen = (offsets == shift_rc).all(dim=1)
        moved = drawing.shifted(int(shift_rc[0]), int(shift_rc[1]))
        out[chosen] = moved.paste(x[chosen])
    return out
