"""Procedural shapes: RGB images of any size and count, made on the spot from a seed.

Each image holds one shape whose kind is its class (disc, square, triangle, cross, ring, bar;
the first ``num_classes`` of them), with a random colour, size, position and rotation, on a
textured background (a random dark colour, smooth low-frequency blotches, pixel noise). The
dataset serves to scale the game to any image size and count, and ``shapes_images`` gives
out-of-distribution images for defenses that need them.

Generation is vectorised: every shape is a mask computed on a coordinate grid in the shape's
own rotated, scaled frame, a batch of images at a time.
"""

from __future__ import annotations

import logging
import math

import torch

from arena.data.common import (
    DatasetError,
    check_memory,
    check_options,
    finish,
    resize_images,
    seeded_generator,
    splits_from_choice,
    three_way_choice,
)
from arena.data.splits import Splits

logger = logging.getLogger(__name__)

SHAPE_KINDS = ("disc", "square", "triangle", "cross", "ring", "bar")
DEFAULT_IMAGE_SIZE = 32
DEFAULT_COUNT = 3000
_PIXELS_PER_BATCH = 1 << 22
"""Pixels drawn per batch (512 images of 32x32 then, fewer when larger); a function of the image
size alone, so the images never depend on the machine."""
_NOISE_CHUNK = 1 << 24
"""Noise values drawn at once (64 MiB); bounds the memory of a batch of large images."""


def _mask(kind: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The mask of shape ``SHAPE_KINDS[kind]`` from frame coordinates ``u``, ``v`` (B, H, W).

    ``u``, ``v`` are pixel coordinates relative to the shape's centre, rotated and divided by
    its radius, so each shape is defined once, in the unit frame.
    """
    name = SHAPE_KINDS[kind]
    if name in ("disc", "ring"):
        r2 = u * u + v * v
        return (r2 <= 1.0) if name == "disc" else (r2 >= 0.55**2) & (r2 <= 1.0)
    if name == "triangle":  # equilateral, inscribed in the unit circle, three half-planes
        mask = v >= -0.5
        for angle in (math.pi / 6, 5 * math.pi / 6):
            mask &= u * math.cos(angle) + v * math.sin(angle) <= 0.5
        return mask
    au, av = u.abs(), v.abs()
    if name == "square":
        return (au <= 0.8) & (av <= 0.8)
    if name == "cross":
        return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))
    return (au <= 1.0) & (av <= 0.25)  # bar


def _normal_rows(
    rows: int, width: int, keep: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Rows ``keep`` (sorted) of ``torch.randn(rows, width, generator=generator)``, drawing
    the same numbers from ``generator`` but holding about :data:`_NOISE_CHUNK` of them at once.

    PyTorch fills a float tensor of 16 or more elements with one uniform number per element,
    turns each aligned block of 16 into normals (Box-Muller) and, when the size is not a
    multiple of 16, redraws the last 16. Drawing whole rows in chunks whose sizes are
    multiples of 16, the last chunk taking the rest, therefore consumes the generator as one
    draw does and yields the same numbers (``tests/arena/data/test_builtin.py`` checks it).
    """
    if rows * width <= _NOISE_CHUNK:
        return torch.randn(rows, width, generator=generator)[keep]
    step = 16 // math.gcd(width, 16)  # rows whose count of elements is a multiple of 16
    per_chunk = max(step, _NOISE_CHUNK // width // step * step)
    out = torch.empty(int(keep.shape[0]), width)
    for start in range(0, rows, per_chunk):
        stop = min(start + per_chunk, rows)
        if rows - stop < per_chunk:  # the last chunk takes the rest, as one draw ends
            stop = rows
        chunk = torch.randn(stop - start, width, generator=generator)
        inside = (keep >= start) & (keep < stop)
        out[inside] = chunk[keep[inside] - start]
        if stop == rows:
            break
    return out


def _draw(
    kind: torch.Tensor, image_size: int, generator: torch.Generator, keep: torch.Tensor
) -> torch.Tensor:
    """Images ``keep`` (sorted indices into ``kind``) of a batch of ``B`` images (B, 3, S, S)
    in [0, 1], one shape of class ``kind[i]`` in image ``i``.

    Every random number of the whole batch is drawn, in one order, so an image never depends
    on which others are kept; only the kept images are rendered.
    """
    b, s = int(kind.shape[0]), image_size
    radius = s * (0.18 + 0.2 * torch.rand(b, generator=generator))
    centre = radius[:, None] + (s - 2 * radius[:, None]) * torch.rand(b, 2, generator=generator)
    theta = 2 * math.pi * torch.rand(b, generator=generator)
    colour = 0.55 + 0.45 * torch.rand(b, 3, generator=generator)
    colour[torch.arange(b), torch.randint(3, (b,), generator=generator)] *= 0.3  # one weak channel
    background = 0.05 + 0.35 * torch.rand(b, 3, 1, 1, generator=generator)
    blotches = 0.15 * torch.rand(b, 3, 4, 4, generator=generator) - 0.075
    noise = 0.04 * _normal_rows(b, 3 * s * s, keep, generator).view(-1, 3, s, s)
    cos, sin = torch.cos(theta)[keep, None, None], torch.sin(theta)[keep, None, None]
    kind, radius, centre, colour = kind[keep], radius[keep], centre[keep], colour[keep]
    background, blotches = background[keep], blotches[keep]

    grid = torch.arange(s, dtype=torch.float32) + 0.5
    dx = grid[None, None, :] - centre[:, 0, None, None]
    dy = grid[None, :, None] - centre[:, 1, None, None]
    scale = radius[:, None, None]
    u = (dx * cos + dy * sin) / scale
    v = (dy * cos - dx * sin) / scale
    mask = torch.zeros_like(u, dtype=torch.bool)
    for k in kind.unique().tolist():
        chosen = kind == k
        mask[chosen] = _mask(k, u[chosen], v[chosen])
    mask = mask.unsqueeze(1)

    texture = background + resize_images(blotches + 0.5, s) - 0.5 + noise  # resize clamps to [0, 1]
    return torch.where(mask, colour[:, :, None, None], texture).clamp_(0.0, 1.0)


def _labels(n: int, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` labels, classes balanced and shuffled: the first draw from ``generator``."""
    return (torch.arange(n) % num_classes)[torch.randperm(n, generator=generator)]


def _check(n: int, image_size: int, num_classes: int) -> None:
    if not 2 <= num_classes <= len(SHAPE_KINDS):
        raise DatasetError(
            f"shapes has 2 to {len(SHAPE_KINDS)} classes ({', '.join(SHAPE_KINDS)}), "
            f"got num_classes={num_classes}"
        )
    if n < 1:
        raise DatasetError(f"shapes needs a positive image count, got n={n}")
    check_options(image_size=image_size, limit=None)


def _render(
    labels: torch.Tensor, image_size: int, generator: torch.Generator, keep: torch.Tensor
) -> torch.Tensor:
    """Images ``keep`` (sorted indices into ``labels``) of the shapes labelled ``labels``,
    drawn a batch at a time from ``generator`` after the labels."""
    batch = max(16, min(512, _PIXELS_PER_BATCH // image_size**2))
    out = []
    for start in range(0, int(labels.shape[0]), batch):
        chunk = labels[start : start + batch]
        inside = keep[(keep >= start) & (keep < start + chunk.shape[0])]
        out.append(_draw(chunk, image_size, generator, inside - start))
    return torch.cat(out)


def make_shapes(
    n: int = DEFAULT_COUNT,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    *,
    num_classes: int = len(SHAPE_KINDS),
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (N, 3, S, S) and their labels (N,), classes balanced and shuffled."""
    _check(n, image_size, num_classes)
    check_memory(n, 3, image_size)
    generator = seeded_generator(seed, salt=4)
    labels = _labels(n, num_classes, generator)
    return _render(labels, image_size, generator, torch.arange(n)), labels


def shapes_images(n: int, image_size: int = DEFAULT_IMAGE_SIZE, seed: int = 0) -> torch.Tensor:
    """``n`` shape images (N, 3, S, S) in [0, 1], e.g. as out-of-distribution inputs."""
    return make_shapes(n, image_size, seed)[0]


def load_shapes(
    *,
    seed: int = 0,
    image_size: int | None = None,
    limit: int | None = None,
    n: int = DEFAULT_COUNT,
    num_classes: int = len(SHAPE_KINDS),
) -> Splits:
    """``n`` shape images at ``image_size`` (default 32), split 60/20/20 stratified.

    The split and ``limit`` are chosen from the labels, which come first from the generator,
    so only the images kept are rendered: the same images :func:`make_shapes` would make.
    """
    check_options(image_size=image_size, limit=limit)
    size = image_size or DEFAULT_IMAGE_SIZE
    _check(n, size, num_classes)
    generator = seeded_generator(seed, salt=4)
    y = _labels(n, num_classes, generator)
    parts = three_way_choice(y, seed=seed, limit=limit)
    chosen = torch.cat(parts)
    check_memory(len(chosen), 3, size)
    order, inverse = _sorted_with_inverse(chosen)
    x = _render(y, size, generator, order)[inverse]
    pool = splits_from_choice("shapes", x, y, parts, num_classes=num_classes)
    return finish(pool, seed=seed, image_size=image_size, limit=None)


def _sorted_with_inverse(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``index`` sorted, and where each of its elements went: ``sorted[inverse] == index``."""
    ordered, where = torch.sort(index)
    inverse = torch.empty_like(where)
    inverse[where] = torch.arange(int(where.shape[0]))
    return ordered, inverse
