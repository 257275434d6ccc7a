"""BDMAE: find the tokens a masked autoencoder cannot explain, restore them, classify.

Sun, Pang, Chen & Ling, "Mask and Restore: Blind Backdoor Defense at Test Time with Masked
Autoencoder" (CVPR 2023). Each test image is cut into ``grid x grid`` tokens and purified on its
own, from the model's hard labels alone (black-box):

1. *Trigger scores.* ``rounds`` times, ``masks_per_round`` random masks of ``mask_ratio`` of the
   tokens are restored by the autoencoder. The *image score* of a token is one minus the
   structural similarity (SSIM) between the image and the round's restorations, averaged over
   the token and the rounds: a trigger is unlike anything the autoencoder learnt, so it is not
   restored. The *label score* is the share of masks that covered the token and changed the
   predicted label.
2. *Topology refinement.* Triggers are compact. ``refine_steps`` times per score, a connected
   region of half the score's top tokens is grown (neighbours of the region get a bonus of
   ``topology``) and restored: if the label survives, its tokens lose 0.05 and the rest of the
   top tokens gain 0.05; if the label changes, the other way round.
3. *Purification.* The trigger score ``alpha * image + (1 - alpha) * label`` is cut at five
   levels from ``threshold`` down in steps of 0.05, raised together until the lowest cut keeps
   under ``max_area`` of the tokens; each cut's tokens are restored and the restorations are
   averaged where they overlap. An image with no suspicious tokens is left as it is.

Deviations from the paper, with the reason:

* The paper restores with a masked autoencoder pretrained on ImageNet (ViT-Base, 16-pixel
  patches, images resized to 224). None can be downloaded here, so a small convolutional
  autoencoder is trained on the defender's clean validation images with random patch masks at
  random token grids (4 to 16 per side) and masking ratios (0.1 to 0.9), through the shared
  training loop, and cached by the images' digest. What that costs: a few hundred images
  teach it the look of *this* dataset only, its restorations of masked strokes are blurry
  guesses, and masks change the label of ambiguous clean images more often than a strong
  pretrained MAE would; such an image then gets its most suspicious quarter restored and may
  change class. On 16-pixel digits (``arena evaluate --defender bdmae``, defaults) the served
  clean accuracy is 2 to 4 points below the BadNet's (95.0-95.8% for CA 98.1-99.2%, five
  attacks; BadNets seeds 0-2: 4.2, 2.2, 2.8 points), and training it (60 epochs, about 10 s of
  one CPU core) is paid once per clean set and seed. In return it restores at the image's own
  resolution, with no resizing, at any size from 16 to 224 pixels.
  ``restorer_data`` offers a more generic stand-in (the clean images and procedural shapes);
  it was measured and did no better, so the clean images stay the default
  (:data:`strategies.defenses.restoration.RESTORER_DATA`).
* The token grid is a searched fraction of the image (``grid`` tokens per side; the paper's
  14 x 14 of a 224 image) rather than fixed patches, so that one config means the same at every
  image size.
* Numbers of refinement tokens and the final cuts are set per image; the reference
  implementation takes some of them from the mean over a test batch, which makes one image's
  purification depend on the others in its batch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from arena.core.config import AT_LEAST_ONE, NON_NEGATIVE, SHARE, UNIT, fixed, param
from arena.core.infer import predict
from arena.data.splits import Split
from strategies.defenses.base import Defense, DefenseConfig, Deployment, Panel
from strategies.defenses.restoration import (
    RESTORER_DATA,
    Restorer,
    RestorerRecipe,
    patch_masks,
    random_tokens,
    restore,
    token_index,
    tokens_to_pixels,
    trained_restorer,
)
from strategies.registry import register_defense

MASKS: dict[str, Any] = {"grids": (4, 16), "ratios": (0.1, 0.9)}
"""The autoencoder's training masks: a random grid per batch, a random ratio per image."""
CUTS = 5  # purification masks, one per cut
CUT_STEP = 0.05
REFINE_STEP = 0.05
PIXELS_PER_CHUNK = 2**17  # images purified together: 512 at 16 x 16, 2 at 224 x 224


@dataclass(frozen=True)
class BDMAEConfig(DefenseConfig):
    grid: int = param(
        14, low=4, high=16, valid=AT_LEAST_ONE, help="tokens per image side (the paper: 14)"
    )
    mask_ratio: float = param(
        0.75, low=0.5, high=0.9, valid=UNIT, help="share of tokens a random mask hides"
    )
    rounds: int = param(
        5, low=2, high=8, valid=AT_LEAST_ONE, help="rounds of random masks for the image score"
    )
    masks_per_round: int = param(
        5, low=2, high=8, valid=AT_LEAST_ONE, help="random masks restored per round"
    )
    refine_steps: int = param(
        10, low=0, high=20, valid=NON_NEGATIVE, help="topology refinement steps per score"
    )
    topology: float = param(
        0.5, low=0.0, high=1.0, valid=NON_NEGATIVE, help="growth bonus of a region's neighbours"
    )
    alpha: float = param(
        0.5, low=0.0, high=1.0, valid=UNIT, help="weight of the image score (vs. label)"
    )
    threshold: float = param(
        0.6, low=0.4, high=0.8, valid=UNIT, help="highest cut of the trigger score"
    )
    max_area: float = param(
        0.25, low=0.1, high=0.4, valid=SHARE, help="largest share of tokens restored"
    )
    mae_epochs: int = fixed(
        60, valid=AT_LEAST_ONE, help="passes over the clean data to train the autoencoder"
    )
    mae_width: int = fixed(16, valid=AT_LEAST_ONE, help="channels of the autoencoder's first stage")
    restorer_data: str = param(
        "val",
        choices=RESTORER_DATA,
        help="the autoencoder learns from the clean images, or those and procedural shapes",
    )


def pixels_to_tokens(maps: Tensor, grid: int) -> Tensor:
    """Pixel maps (N, H, W) averaged over each token: (N, g, g), the inverse of
    :func:`~strategies.defenses.restoration.tokens_to_pixels`."""
    n, h, w = maps.shape
    rows, cols = token_index(h, grid), token_index(w, grid)
    per_col = maps.new_zeros(n, h, grid).index_add_(2, cols, maps)
    sums = maps.new_zeros(n, grid, grid).index_add_(1, rows, per_col)
    counts = torch.bincount(rows, minlength=grid)[:, None] * torch.bincount(cols, minlength=grid)
    return sums / counts.clamp_min(1)


def mean_restoration(x: Tensor, restored: Tensor, pixels: Tensor) -> tuple[Tensor, Tensor]:
    """Restorations ``restored`` (K * N, C, H, W) of images ``x`` (N, C, H, W) under pixel masks
    ``pixels`` (K * N, 1, H, W), mask by mask, averaged where the masks overlap (``x`` where
    none covers a pixel), and how many masks cover each pixel (N, 1, H, W)."""
    n, c, h, w = x.shape
    filled = (restored * pixels).view(-1, n, c, h, w).sum(dim=0)
    count = pixels.view(-1, n, 1, h, w).sum(dim=0)
    return torch.where(count > 0, filled / count.clamp_min(1), x), count


def ssim_window(side: int) -> int:
    """Taps of the SSIM window: 11 (the usual) on images of 33 pixels and more, fewer below."""
    return max(3, min(11, (side // 3) | 1))


def neighbours(region: Tensor) -> Tensor:
    """Tokens 4-adjacent to a region (N, g, g) of booleans, the region excluded."""
    out = torch.zeros_like(region)
    out[:, 1:] |= region[:, :-1]
    out[:, :-1] |= region[:, 1:]
    out[:, :, 1:] |= region[:, :, :-1]
    out[:, :, :-1] |= region[:, :, 1:]
    return out & ~region


def grow_regions(
    score: Tensor, allowed: Tensor, length: Tensor, topology: float, gen: torch.Generator
) -> Tensor:
    """A random connected-leaning region (N, g, g) of ``length[i]`` tokens of ``allowed[i]`` per
    image: a seed drawn with weight ``score``, then one token at a time, each drawn with weight
    ``score + topology`` for neighbours of the region and ``score`` otherwise."""
    n, g, _ = score.shape
    weight = score.clamp_min(0).reshape(n, -1) + 1e-6
    one = torch.eye(g * g, dtype=torch.bool).view(g * g, g, g)
    adjacent = neighbours(one).view(g * g, -1).float()  # row t: the neighbours of token t
    blocked = ~allowed.reshape(n, -1)
    region = torch.zeros_like(blocked)
    bonus = torch.zeros_like(weight)  # 1 on neighbours of the region so far
    rows = torch.arange(n)
    for step in range(int(length.max()) if n else 0):
        draw = torch.rand(weight.shape, generator=gen) * (weight + topology * bonus)
        best, pick = draw.masked_fill_(blocked, -1.0).max(dim=1)
        active = (step < length) & (best >= 0)
        at, token = rows[active], pick[active]
        region[at, token] = True
        blocked[at, token] = True
        bonus[at] = torch.maximum(bonus[at], adjacent[token])
    return region.view(n, g, g)


class BDMAEDeployment(Deployment):
    """The BadNet served behind BDMAE's test-time purification."""

    def __init__(self, model: nn.Module, mae: Restorer, config: BDMAEConfig, seed: int) -> None:
        super().__init__(model)
        self.mae = mae
        self.config = config
        self.seed = seed

    def _label(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The restorations of ``x`` under pixel masks ``mask`` and their predicted labels."""
        restored = restore(self.mae, x, mask)
        return restored, predict(self.model, restored)

    def scores(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """Trigger scores (N, g, g) of images ``x`` (steps 1 and 2 of the module docstring)."""
        import kornia

        cfg = self.config
        n, _, h, w = x.shape
        g = min(cfg.grid, h, w)
        m = cfg.masks_per_round
        base = predict(self.model, x)
        image_score = x.new_zeros(n, g, g)
        label_score = x.new_zeros(n, g, g)
        for _ in range(cfg.rounds):
            tokens = random_tokens(m * n, g, cfg.mask_ratio, gen)
            pixels = tokens_to_pixels(tokens, h, w)
            restored, labels = self._label(x.repeat(m, 1, 1, 1), pixels)
            flipped = (labels != base.repeat(m)).float()
            label_score += (tokens * flipped.view(-1, 1, 1)).view(m, n, g, g).sum(dim=0)
            mix, _ = mean_restoration(x, restored, pixels)
            ssim = kornia.metrics.ssim(x, mix, ssim_window(min(h, w))).mean(dim=1)
            image_score += pixels_to_tokens(1 - ssim, g)
        image_score /= cfg.rounds
        label_score /= cfg.rounds * m
        # the sizes of the regions refined: tokens of image score >= 0.2; the label score's mass
        image_top = (image_score >= 0.2).flatten(1).sum(dim=1)
        label_top = (label_score.flatten(1).mean(dim=1) * g * g).long()
        image_score = self._refine(x, base, image_score, image_top, gen)
        label_score = self._refine(x, base, label_score, label_top, gen)
        return cfg.alpha * image_score + (1 - cfg.alpha) * label_score

    def _refine(
        self, x: Tensor, base: Tensor, score: Tensor, top: Tensor, gen: torch.Generator
    ) -> Tensor:
        """Step 2 on one score: restore grown regions of half of each image's ``top`` tokens."""
        n, g, _ = score.shape
        h, w = x.shape[2:]
        score = score.clone()
        for _ in range(self.config.refine_steps):
            rank = score.view(n, -1).argsort(dim=1, descending=True).argsort(dim=1)
            allowed = (rank < top[:, None]).view(n, g, g)
            region = grow_regions(score, allowed, top // 2, self.config.topology, gen)
            _, labels = self._label(x, tokens_to_pixels(region.float(), h, w))
            beta = torch.where(labels == base, REFINE_STEP, -REFINE_STEP)
            beta = beta * region.flatten(1).any(dim=1)  # nothing restored: nothing learnt
            rest = allowed & ~region
            score += beta.view(-1, 1, 1) * (rest.float() - region.float())
        return score

    def cuts(self, score: Tensor) -> Tensor:
        """The purification masks (CUTS, N, g, g) of trigger scores (N, g, g) (step 3)."""
        n = len(score)
        flat = score.view(n, 1, -1)
        base = self.config.threshold - CUT_STEP * torch.arange(CUTS, dtype=score.dtype)
        raise_by = 0.99 ** torch.arange(201, dtype=score.dtype)  # raised: 1 - 0.99^k (1 - cut)
        lowest = 1 - raise_by * (1 - base[-1])
        share = (flat >= lowest.view(1, -1, 1)).float().mean(dim=2)  # (N, 201)
        ok = share < self.config.max_area
        k = torch.where(ok.any(dim=1), ok.float().argmax(dim=1), len(raise_by) - 1)
        levels = 1 - raise_by[k].view(1, -1) * (1 - base.view(-1, 1))  # (CUTS, N)
        return score[None] >= levels[:, :, None, None]

    def purify_with_masks(self, x: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Purified images and the share of cuts that restored each pixel (N, 1, H, W)."""
        h, w = x.shape[2:]
        cuts = self.cuts(self.scores(x, gen)).float()
        pixels = tokens_to_pixels(cuts.flatten(0, 1), h, w)
        restored = restore(self.mae, x.repeat(CUTS, 1, 1, 1), pixels)
        purified, count = mean_restoration(x, restored, pixels)
        return purified, count / CUTS

    def purify(self, x: Tensor) -> Tensor:
        if len(x) == 0:
            return x
        gen = torch.Generator().manual_seed(self.seed + 1)
        chunk = max(1, PIXELS_PER_CHUNK // (x.shape[2] * x.shape[3]))
        return torch.cat(
            [self.purify_with_masks(x[i : i + chunk], gen)[0] for i in range(0, len(x), chunk)]
        )


@register_defense
class BDMAE(Defense[BDMAEConfig]):
    name = "bdmae"
    version = 1
    summary = "restore the tokens a masked autoencoder cannot explain; Sun et al."
    kind = "purifier"
    access = "black-box"
    caches_fit = False  # the autoencoder, all the fit costs, is cached as a part
    config_cls = BDMAEConfig

    def fit_copy(self, model: nn.Module, clean: Split) -> Deployment:
        """Train (or load) the autoencoder; the model is only ever queried for labels."""
        cfg = self.config
        recipe = RestorerRecipe(width=cfg.mae_width, epochs=cfg.mae_epochs)
        sampler = functools.partial(patch_masks, grids=MASKS["grids"], ratios=MASKS["ratios"])
        mae = trained_restorer(
            self.cache,
            "mae",
            clean.x,
            sampler,
            MASKS,
            recipe,
            self.seed,
            version=self.version,
            source=cfg.restorer_data,
        )
        deployment = BDMAEDeployment(model, mae, cfg, self.seed)
        deployment.details = {"grid": cfg.grid}
        return deployment

    def show(self, deployment: Deployment, clean: Split, triggered: Split) -> list[Panel]:
        assert isinstance(deployment, BDMAEDeployment)
        panels: list[Panel] = []
        for name, split in (("clean", clean), ("triggered", triggered)):
            x = split.x[:8]
            gen = torch.Generator().manual_seed(deployment.seed + 1)
            purified, share = deployment.purify_with_masks(x, gen)
            before, after = predict(deployment.model, x), predict(deployment.model, purified)
            panels += [
                Panel(f"{name} inputs", "images", x, tuple(f"pred {int(p)}" for p in before)),
                Panel(
                    f"{name}: restored tokens (brighter: restored at more cuts)",
                    "images",
                    share.expand(-1, 3, -1, -1),
                    tuple(f"{float((s > 0).float().mean()):.0%} restored" for s in share),
                ),
                Panel(
                    f"{name}: purified", "images", purified, tuple(f"pred {int(p)}" for p in after)
                ),
            ]
        return panels
