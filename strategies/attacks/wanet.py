"""WaNet: the trigger is a fixed, small and smooth warp of the whole image.

Nguyen & Tran, "WaNet - Imperceptible Warping-based Backdoor Attack" (ICLR 2021). A random
``k x k`` grid of control displacements, normalised to a mean absolute value of one, is
upsampled (bicubic) to the image, scaled by the strength ``s`` and added to the identity
sampling grid, which is clamped to the image; every triggered image is resampled through that
grid (``grid_sample``). The largest displacement is about ``s`` pixels, with no visible pattern.

The "noise mode" adds ``cross_ratio`` times as many training images warped by the field plus
per-pixel random noise (up to half a pixel) that keep their true label, so that the network
learns the exact warp and not any warp.

Deviations from the paper, and why:

* none in how it poisons: as in the paper, every training batch gets a fresh share
  (``poison_rate``) of warped images of the classes it moves, with their target label, and
  ``cross_ratio`` times as many noise-mode images with their true label, the noise drawn anew
  (:meth:`WaNet.training_set`). :meth:`WaNet.poison` poisons a set once, the same way, for
  callers that need one fixed poisoned set;
* defaults: the paper's ``k = 4, s = 0.5`` and ``cross_ratio = 2`` are tuned for 32-pixel
  images and hundreds of epochs. The default ``digits`` images are 8-pixel digits upsampled to
  16 and a BadNet trains for 20 epochs, where ``s = 0.5`` moves the digit by a quarter of a
  source pixel: with ``cross_ratio = 2`` the backdoor stays half-learned (ASR 0.42 after 20
  epochs, 0.52 after 60; ``s = 1.5`` reaches 0.91 after 60). The defaults ``s = 1.5,
  cross_ratio = 0.25`` pass the user's gate at 20 epochs; the ranges keep the paper's settings
  within reach of the attacker's search;
* control points never come closer than :data:`MIN_SPACING` pixels (``k`` is lowered on small
  images), so that no point of the search space folds the image; the field is fixed by
  ``seed``, and on non-square images each axis is scaled by its own side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from arena.core.config import NON_NEGATIVE, SEED, Valid, fixed, param
from arena.core.train import BatchHook
from arena.data.splits import Split
from strategies.attacks.base import Attack, AttackConfig, Poisoned
from strategies.registry import register_attack

MIN_SPACING = 5
"""Fewest pixels between neighbouring control points of the warping field."""


@dataclass(frozen=True)
class WaNetConfig(AttackConfig):
    grid: int = param(
        4, low=2, high=6, valid=Valid(2), help="control grid side k of the warping field"
    )
    strength: float = param(
        1.5,
        low=0.5,
        high=1.75,
        valid=NON_NEGATIVE,
        help="warp strength s (about the largest displacement, px)",
    )
    cross_ratio: float = param(
        0.25,
        low=0.0,
        high=2.0,
        valid=NON_NEGATIVE,
        help="noise-mode images (true label) per poisoned image",
    )
    seed: int = fixed(0, valid=SEED, help="seed of the warping field")


def effective_grid(k: int, height: int, width: int) -> int:
    """``k``, or fewer control points on images so small that they would come closer than
    :data:`MIN_SPACING` pixels (a field that bends every few pixels folds the image)."""
    return max(2, min(k, (min(height, width) - 1) // MIN_SPACING + 1))


def control_grid(k: int, generator: torch.Generator) -> torch.Tensor:
    """WaNet's random control displacements, (1, 2, k, k), uniform in [-1, 1] and normalised
    to a mean absolute value of 1."""
    ctrl = torch.rand(1, 2, k, k, generator=generator) * 2 - 1
    return ctrl / ctrl.abs().mean()


def warp_field(ctrl: torch.Tensor, strength: float, height: int, width: int) -> torch.Tensor:
    """Displacement of the sampling grid in grid_sample's normalised units, (H, W, 2) as
    (x, y): the control grid upsampled bicubically, times ``strength / side`` per axis."""
    up = F.interpolate(ctrl, size=(height, width), mode="bicubic", align_corners=True)
    scale = torch.tensor([strength / width, strength / height]).view(1, 2, 1, 1)
    return (up * scale)[0].permute(1, 2, 0)


def identity_grid(height: int, width: int) -> torch.Tensor:
    """The sampling grid that leaves an image unchanged, (H, W, 2) as (x, y) in [-1, 1]."""
    ys = torch.linspace(-1, 1, height)
    xs = torch.linspace(-1, 1, width)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)


def displacement_pixels(grid: torch.Tensor) -> torch.Tensor:
    """How far (in pixels, along x and y) each output pixel samples from its own place,
    (H, W, 2), for a sampling grid with ``align_corners=True``."""
    h, w = grid.shape[:2]
    offset = grid - identity_grid(h, w)
    return offset * torch.tensor([(w - 1) / 2, (h - 1) / 2])


def warp(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Images ``x`` (N, C, H, W) resampled through ``grid`` ((H, W, 2) or (N, H, W, 2))."""
    if grid.dim() == 3:
        grid = grid.expand(len(x), *grid.shape)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.clamp(0.0, 1.0)


@register_attack
class WaNet(Attack[WaNetConfig]):
    name = "wanet"
    version = 2
    summary = "imperceptible smooth warping field, with noise mode; Nguyen & Tran"
    config_cls = WaNetConfig

    def __init__(self, config: WaNetConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        cfg = self.config
        if cfg.grid < 2:
            raise ValueError(f"wanet's grid must be at least 2 (got {cfg.grid}); use grid=4")
        _, h, w = self.image_shape
        k = effective_grid(cfg.grid, h, w)
        ctrl = control_grid(k, torch.Generator().manual_seed(cfg.seed))
        self.field = warp_field(ctrl, cfg.strength, h, w)
        self.grid = (identity_grid(h, w) + self.field).clamp(-1, 1)

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return warp(x, self.grid)

    def noisy_grids(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` sampling grids: the trigger's plus uniform noise of up to one grid step / 2
        (half a pixel) per pixel and axis, (n, H, W, 2)."""
        h, w = self.grid.shape[:2]
        noise = torch.rand(n, h, w, 2, generator=generator) * 2 - 1
        noise = noise * torch.tensor([1.0 / w, 1.0 / h])
        return (self.grid + noise).clamp(-1, 1)

    def poison(self, train: Split, generator: torch.Generator) -> Poisoned:
        cfg = self.config
        out = super().poison(train, generator)
        count = round(cfg.cross_ratio * int(out.poisoned.sum()))
        noisy = self.choose(~out.poisoned, count, generator)
        x = out.data.x
        if len(noisy):
            x[noisy] = warp(x[noisy], self.noisy_grids(len(noisy), generator))
        return Poisoned(Split(x, out.data.y), out.poisoned)

    def training_set(
        self, train: Split, generator: torch.Generator
    ) -> tuple[Split, BatchHook | None]:
        """The clean set, and a hook that poisons each batch afresh as :meth:`poison` poisons a
        set (the paper's training: a new share of warped and noise-mode images per batch)."""
        own = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator)))

        def per_batch(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.poison(Split(x, y), own)
            return out.data.x, out.data.y

        return train, per_batch
