"""Drawing triggers: one PNG grid with a clean image and its triggered version per attack.

Each row shows one attack: its name, the clean image, the triggered image and their
difference (``|triggered - clean|`` stretched so that its largest value is white, which makes
faint triggers such as blends and sinusoids visible). Images are enlarged by a whole factor
(nearest neighbour) so that every tile is at least ``MIN_TILE`` pixels high; one-channel images
are drawn grey. The layout is fixed by :func:`grid_layout`, so a reader (or a test) can find
each tile; the PNG also records the attack names of its rows (a JSON list) in its
``Description`` text field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MIN_TILE = 96
PAD = 6
LABEL_WIDTH = 140
HEADER = 40
COLUMNS = ("clean", "triggered", "difference")
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)


@dataclass(frozen=True)
class TriggerRow:
    """One attack's row: its name and a clean image with its triggered copy, (C, H, W)."""

    name: str
    clean: torch.Tensor
    triggered: torch.Tensor


@dataclass(frozen=True)
class GridLayout:
    """Pixel geometry of a grid of ``rows`` rows of images of ``height`` x ``width``."""

    rows: int
    scale: int
    tile_height: int
    tile_width: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole PNG."""
        width = LABEL_WIDTH + len(COLUMNS) * (self.tile_width + PAD) + PAD
        return width, HEADER + self.rows * (self.tile_height + PAD) + PAD

    def box(self, row: int, column: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the tile at ``row`` and ``column`` (``COLUMNS``)."""
        left = LABEL_WIDTH + PAD + column * (self.tile_width + PAD)
        top = HEADER + row * (self.tile_height + PAD)
        return left, top, left + self.tile_width, top + self.tile_height


def grid_layout(rows: int, height: int, width: int) -> GridLayout:
    """The layout for ``rows`` attacks on images of ``height`` x ``width`` pixels."""
    scale = max(1, math.ceil(MIN_TILE / height))
    return GridLayout(rows=rows, scale=scale, tile_height=height * scale, tile_width=width * scale)


def to_pixels(image: torch.Tensor, scale: int) -> np.ndarray:
    """An image (C, H, W) in [0, 1] as uint8 RGB pixels (H * scale, W * scale, 3)."""
    image = image.detach().float().clamp(0.0, 1.0)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    pixels = (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.kron(pixels, np.ones((scale, scale, 1), dtype=np.uint8))


def difference(clean: torch.Tensor, triggered: torch.Tensor) -> torch.Tensor:
    """``|triggered - clean|`` over channels' maximum, stretched to [0, 1] (zero stays zero)."""
    diff = (triggered.float() - clean.float()).abs().amax(dim=0, keepdim=True)
    top = float(diff.max())
    return diff / top if top > 0 else diff


def render_trigger_grid(rows: list[TriggerRow], path: str | Path, *, title: str) -> Path:
    """Write the grid of ``rows`` to ``path`` (parent folders made); returns the path."""
    from PIL import Image, ImageDraw
    from PIL.PngImagePlugin import PngInfo

    if not rows:
        raise ValueError("there are no attacks to draw")
    _, height, width = rows[0].clean.shape
    layout = grid_layout(len(rows), height, width)
    canvas = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((PAD, 4), title, fill=TEXT)
    for column, name in enumerate(COLUMNS):
        left, _, _, _ = layout.box(0, column)
        draw.text((left, HEADER - 16), name, fill=TEXT)
    shape = tuple(rows[0].clean.shape)
    for i, row in enumerate(rows):
        if tuple(row.clean.shape) != shape or tuple(row.triggered.shape) != shape:
            raise ValueError(f"{row.name}: its images are not of the grid's shape {shape}")
        tiles = (row.clean, row.triggered, difference(row.clean, row.triggered))
        for column, image in enumerate(tiles):
            left, top, _, _ = layout.box(i, column)
            canvas.paste(Image.fromarray(to_pixels(image, layout.scale)), (left, top))
        _, top, _, bottom = layout.box(i, 0)
        draw.text((PAD, (top + bottom) // 2 - 6), row.name, fill=TEXT)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = PngInfo()
    info.add_text("Title", title)
    info.add_text("Description", json.dumps([row.name for row in rows]))
    canvas.save(out, pnginfo=info)
    return out
