"""Image restoration networks for input purifiers, trained here on the defender's clean data.

Februus fills the region GradCAM removed with an inpainting network; BDMAE fills masked patches
with a masked autoencoder. Neither can download the weights its paper used, so both train one
:class:`Restorer` on the defender's clean validation images with random holes (Februus: random
boxes, as its completion network was trained; BDMAE: random patch masks at random token grids
and masking ratios, as a masked autoencoder is), through the shared training loop, and cache it
by what determines its weights (:func:`trained_restorer`).

The network is a small fully convolutional encoder-decoder (two stride-2 stages, dilated
convolutions in the middle for context, additive skips), so one architecture serves any image
size from 16 to 224 pixels; it sees the image with its holes zeroed and the hole mask, and only
the holes of its output are kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from arena.core.cache import ArtifactCache, cached_module, tensor_digest
from arena.core.train import TrainConfig, run_loop
from arena.data.shapes import shapes_images

MaskSampler = Callable[[int, int, int, torch.Generator], Tensor]
"""``sampler(n, height, width, generator)``: ``n`` hole masks (n, 1, H, W) of 0/1 floats."""


def _conv(c_in: int, c_out: int, *, stride: int = 1, dilation: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation), nn.ReLU()
    )


class Restorer(nn.Module):
    """``restorer(x, mask)``: ``x`` with the pixels where ``mask`` is 1 filled in.

    Inputs and outputs are (N, C, H, W) images in [0, 1]; ``mask`` is (N, 1, H, W). Pixels
    outside the mask come back unchanged."""

    def __init__(self, channels: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.inp = _conv(channels + 1, w)
        self.down1 = _conv(w, 2 * w, stride=2)
        self.down2 = _conv(2 * w, 2 * w, stride=2)
        self.mid = nn.Sequential(_conv(2 * w, 2 * w, dilation=2), _conv(2 * w, 2 * w, dilation=4))
        self.up2 = _conv(2 * w, 2 * w)
        self.lift = nn.Conv2d(2 * w, w, 1)
        self.up1 = _conv(w, w)
        self.out = nn.Conv2d(w, channels, 3, padding=1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h, w = x.shape[2:]
        ph, pw = -h % 4, -w % 4  # two stride-2 stages: pad to a multiple of 4, crop after
        holes = F.pad(mask, (0, pw, 0, ph), value=1.0)
        seen = F.pad(x, (0, pw, 0, ph)) * (1 - holes)
        e1 = self.inp(torch.cat([seen, holes], dim=1))
        e2 = self.down1(e1)
        z = self.mid(self.down2(e2))
        d2 = self.up2(F.interpolate(z, size=e2.shape[2:], mode="nearest") + e2)
        d1 = self.up1(F.interpolate(self.lift(d2), size=e1.shape[2:], mode="nearest") + e1)
        fill = torch.sigmoid(self.out(d1))[:, :, :h, :w]
        return x * (1 - mask) + fill * mask


@dataclass(frozen=True)
class RestorerRecipe:
    """How a restorer is trained: its width and the shared loop's settings."""

    width: int = 16
    epochs: int = 60
    batch_size: int = 32
    lr: float = 3e-3
    schedule: str = "cosine"

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            optimizer="adam",
            lr=self.lr,
            batch_size=self.batch_size,
            epochs=self.epochs,
            schedule=self.schedule,
        )


def box_masks(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator,
    *,
    low: float = 0.15,
    high: float = 0.5,
    boxes: int = 2,
) -> Tensor:
    """Holes made of up to ``boxes`` random rectangles per image (the first always drawn), each
    side a uniform share in ``[low, high]`` of the image side, anywhere in the image."""
    rows = torch.arange(height).view(1, -1, 1)
    cols = torch.arange(width).view(1, 1, -1)
    mask = torch.zeros(n, height, width, dtype=torch.bool)
    for b in range(boxes):
        u = torch.rand(n, 5, generator=generator)
        bh = (low + (high - low) * u[:, 0]) * height
        bw = (low + (high - low) * u[:, 1]) * width
        top, left = u[:, 2] * (height - bh), u[:, 3] * (width - bw)
        in_rows = (rows >= top.view(-1, 1, 1)) & (rows < (top + bh).view(-1, 1, 1))
        in_cols = (cols >= left.view(-1, 1, 1)) & (cols < (left + bw).view(-1, 1, 1))
        inside = in_rows & in_cols
        keep = (u[:, 4] < 0.5) | (b == 0)
        mask |= inside & keep.view(-1, 1, 1)
    return mask[:, None].float()


def token_index(side: int, grid: int) -> Tensor:
    """The token row (or column) of each pixel of an axis of ``side`` pixels cut in ``grid``."""
    return torch.arange(side) * grid // side


def tokens_to_pixels(tokens: Tensor, height: int, width: int) -> Tensor:
    """Token masks or scores (N, g, g) as pixel maps (N, 1, H, W): each pixel takes its token's
    value (tokens are ``H / g`` by ``W / g`` pixels, rounded down)."""
    g = tokens.shape[-1]
    rows, cols = token_index(height, g), token_index(width, g)
    return tokens[:, rows][:, :, cols][:, None]


def random_tokens(n: int, grid: int, ratio: Tensor | float, generator: torch.Generator) -> Tensor:
    """Token masks (n, g, g) with ``round(ratio * g * g)`` random tokens masked in each (a float
    ratio for all, or one per image)."""
    count = torch.as_tensor(ratio, dtype=torch.float32).expand(n) * grid * grid
    rank = torch.rand(n, grid * grid, generator=generator).argsort(dim=1).argsort(dim=1)
    return (rank < count.round().view(-1, 1)).float().view(n, grid, grid)


def patch_masks(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator,
    *,
    grids: tuple[int, int] = (4, 16),
    ratios: tuple[float, float] = (0.1, 0.8),
) -> Tensor:
    """Masked-autoencoder holes: random tokens of one random grid (tokens per side, in
    ``grids``) for the batch, each image at its own masking ratio drawn from ``ratios``."""
    grid = int(torch.randint(grids[0], grids[1] + 1, (1,), generator=generator))
    grid = min(grid, height, width)
    ratio = ratios[0] + (ratios[1] - ratios[0]) * torch.rand(n, generator=generator)
    return tokens_to_pixels(random_tokens(n, grid, ratio, generator), height, width)


def fit_restorer(
    restorer: Restorer, images: Tensor, sampler: MaskSampler, recipe: RestorerRecipe, seed: int
) -> None:
    """Train ``restorer`` in place to fill random holes of ``images`` (mean squared error on the
    hole pixels), through the shared training loop; the holes come from ``sampler`` with a
    generator seeded by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    height, width = images.shape[2:]

    def loss_fn(x: Tensor) -> Tensor:
        mask = sampler(len(x), height, width, generator)
        flip = torch.rand(len(x), generator=generator) < 0.5  # mirrored copies: more data
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        error = (restorer(x, mask) - x).square() * mask
        return error.sum() / (mask.sum() * x.shape[1]).clamp_min(1.0)

    result = run_loop(restorer, (images,), loss_fn, recipe.train_config(), seed=seed)
    if result.status != "ok":
        raise RuntimeError(f"restorer training diverged (loss {result.final_loss}); lower its lr")


RESTORER_DATA = ("val", "val+shapes")
"""What a restorer learns from (a defense's ``restorer_data``): the defender's clean validation
images (``val``, the default), or those and :data:`SHAPES_PER_IMAGE` procedural ``shapes``
images per validation image (``val+shapes``), a generic stand-in for the large natural-image
sets the papers' restorers were pretrained on, at the same number of optimisation steps.

Measured on digits (badnets, glasses, blend-noise, sig, wanet; seeds 0-2; ``docs/defenses.md``,
"Restorers"), neither shapes variant does better than ``val``: at the same cost BDMAE loses 4-8
points of clean accuracy (past the defender's gate in every cell), and with five times the
steps the clean accuracy comes back but more of most triggers get through (a restorer that
learnt generic shapes restores the trigger as well). The consequence of the small restorer
stands: it knows this dataset only, and a trigger it has never seen is hard for it to restore,
which is what Februus and BDMAE rely on."""
SHAPES_PER_IMAGE = 4


def restorer_images(clean: Tensor, source: str, seed: int) -> Tensor:
    """The images a restorer trains on (see :data:`RESTORER_DATA`): ``shapes`` images are drawn
    at the clean images' size (and in grey for one-channel data) by ``seed``."""
    if source == "val":
        return clean
    if source != "val+shapes":
        raise ValueError(f"unknown restorer data {source!r}; choose one of {RESTORER_DATA}")
    n, c, h, w = clean.shape
    extra = shapes_images(SHAPES_PER_IMAGE * n, image_size=max(h, w), seed=seed + 1)
    extra = F.interpolate(extra, size=(h, w), mode="bilinear", antialias=True).clamp(0, 1)
    if c == 1:
        extra = extra.mean(dim=1, keepdim=True)
    return torch.cat([clean, extra.to(clean.dtype)])


def same_steps(recipe: RestorerRecipe, clean: int, images: int) -> RestorerRecipe:
    """``recipe`` with as many optimisation steps over ``images`` images as it takes over
    ``clean`` ones (fewer passes over more data: the same training cost)."""
    epochs = max(1, round(recipe.epochs * clean / images))
    return dataclasses.replace(recipe, epochs=epochs)


def trained_restorer(
    cache: ArtifactCache | None,
    kind: str,
    clean: Tensor,
    sampler: MaskSampler,
    masks: dict[str, Any],
    recipe: RestorerRecipe,
    seed: int,
    *,
    version: int,
    source: str = "val",
) -> Restorer:
    """The restorer of ``kind`` ("inpainter", "mae") trained on the defender's ``clean`` images,
    with ``shapes`` added when ``source`` says so (:data:`RESTORER_DATA`, at the same number of
    steps): from ``cache`` when it holds one trained on the same images (by digest) with the
    same holes (``masks`` describes ``sampler``), recipe and seed by the same version of the
    defense that asks (``version``); trained now and cached otherwise."""
    images = restorer_images(clean, source, seed)
    recipe = same_steps(recipe, len(clean), len(images))
    spec = {
        "masks": masks,
        "recipe": vars(recipe),
        "seed": seed,
        "data": tensor_digest(images),
        "channels": int(images.shape[1]),
    }

    def build() -> Restorer:
        with torch.random.fork_rng(devices=[]):  # seeded initial weights; global RNG untouched
            torch.manual_seed(seed)
            return Restorer(int(images.shape[1]), recipe.width)

    return cached_module(
        cache, kind, spec, build, lambda net: fit_restorer(net, images, sampler, recipe, seed),
        version=version,
    )


@torch.no_grad()
def restore(restorer: Restorer, x: Tensor, mask: Tensor, batch_size: int = 512) -> Tensor:
    """``restorer(x, mask)`` in chunks, without gradients."""
    return torch.cat(
        [
            restorer(x[i : i + batch_size], mask[i : i + batch_size])
            for i in range(0, len(x), batch_size)
        ]
    )
