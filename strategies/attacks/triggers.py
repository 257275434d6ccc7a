"""Drawing triggers: masks of simple shapes at named places, sized relative to the image.

Sizes are fractions of the image side, so one config means the same trigger at 16 and at 224
pixels; every shape is at least 2 pixels across.
"""

from __future__ import annotations

import torch

from arena.core.config import Valid

LOCATIONS = ("top-left", "top-right", "bottom-left", "bottom-right", "center")

YELLOW = (1.0, 1.0, 0.0)
RED = (1.0, 0.0, 0.0)
LUMA = (0.299, 0.587, 0.114)
"""Weights of red, green and blue in the luminance that stands for a colour on 1-channel data."""


CORNER_SIZE = Valid(0, 0.9, low_open=True)
"""The valid sizes (shares of the image side) of a square placed by :func:`corner`: a square of
up to 0.9 of the side fits, one margin from the edges, at every location on every image of 8
pixels a side or more; a larger one can leave the image, which the drawing cannot take."""


def side_pixels(fraction: float, side: int) -> int:
    return max(2, min(side, round(fraction * side)))


def corner(location: str, size: int, height: int, width: int) -> tuple[int, int]:
    """Top-left pixel of a ``size`` box at ``location``, one margin (side/16) from the edges."""
    margin = max(1, round(min(height, width) / 16))
    rows = {"top": margin, "bottom": height - size - margin}
    cols = {"left": margin, "right": width - size - margin}
    if location == "center":
        return (height - size) // 2, (width - size) // 2
    if location not in LOCATIONS:
        raise ValueError(f"unknown location {location!r}; choose one of {LOCATIONS}")
    v, h = location.split("-")
    return rows[v], cols[h]


def square_mask(size: int, top: int, left: int, height: int, width: int) -> torch.Tensor:
    mask = torch.zeros(1, height, width)
    mask[:, top : top + size, left : left + size] = 1.0
    return mask


def triangle_mask(size: int, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """An upward isosceles triangle filling a ``size`` box (apex at the top centre)."""
    rows = torch.arange(size, dtype=torch.float32).view(-1, 1)
    cols = torch.arange(size, dtype=torch.float32).view(1, -1)
    half = (rows + 1) * (size / 2) / size  # half-width grows linearly downwards
    centre = (size - 1) / 2
    inside = ((cols - centre).abs() <= half - 0.25).float()
    mask = torch.zeros(1, height, width)
    mask[0, top : top + size, left : left + size] = inside
    return mask


def colour_image(
    colour: tuple[float, float, float], channels: int, height: int, width: int
) -> torch.Tensor:
    """A solid colour as a (C, H, W) image; on 1-channel data, the colour's luminance."""
    if channels == 1:
        (r, g, b), (wr, wg, wb) = colour, LUMA
        return torch.full((1, height, width), wr * r + wg * g + wb * b)
    return torch.tensor(colour, dtype=torch.float32).view(3, 1, 1).expand(3, height, width).clone()


def paste(x: torch.Tensor, mask: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """``(1 - mask) * x + mask * content`` (mask (1, H, W), content (C, H, W))."""
    return (1.0 - mask) * x + mask * content


# Named colours of solid triggers (post-it notes).
COLOURS = {
    "yellow": YELLOW,
    "red": RED,
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0),
    "white": (1.0, 1.0, 1.0),
}


def random_corners(
    n: int, size: int, height: int, width: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left pixels (rows, columns) of ``n`` ``size`` boxes placed uniformly in the image."""
    rows = torch.randint(0, height - size + 1, (n,), generator=generator)
    cols = torch.randint(0, width - size + 1, (n,), generator=generator)
    return rows, cols


def paste_at(
    x: torch.Tensor, content: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """Each image ``x[i]`` (N, C, H, W) with a square patch pasted with its top-left pixel at
    ``(rows[i], cols[i])``: ``content`` is one patch (C, s, s) for all or one per image
    (N, C, s, s). One gather for the whole batch."""
    n, _, height, width = x.shape
    side = content.shape[-1]
    r = torch.arange(height).view(1, height, 1) - rows.view(n, 1, 1)
    c = torch.arange(width).view(1, 1, width) - cols.view(n, 1, 1)
    inside = (r >= 0) & (r < side) & (c >= 0) & (c < side)  # (N, H, W)
    r = r.clamp(0, side - 1).expand(n, height, width)
    c = c.clamp(0, side - 1).expand(n, height, width)
    content = content.to(x.dtype)
    if content.dim() == 3:
        patch = content[:, r, c].transpose(0, 1)  # (N, C, H, W)
    else:
        patch = content[torch.arange(n).view(n, 1, 1), :, r, c].permute(0, 3, 1, 2)
    return torch.where(inside[:, None], patch, x)


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """RGB images (..., 3, H, W) as ``channels`` channels: themselves, or their luminance for
    one."""
    if channels == 3:
        return image
    if channels == 1:
        weights = torch.tensor(LUMA, dtype=image.dtype).view(3, 1, 1)
        return (image * weights).sum(dim=-3, keepdim=True)
    raise ValueError(f"images with {channels} channels are not supported; use 1 or 3")


def blend(x: torch.Tensor, key: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(1 - alpha) * x + alpha * key``: Chen et al.'s blended injection of a key image."""
    return (1.0 - alpha) * x + alpha * key
