"""ShrinkPad: shrink each test input a little and pad it back to size, at a random place.

Li, Zhai, Wu, Jiang, Li & Xia, "Rethinking the Trigger of Backdoor Attack" (arXiv 2004.04692,
2020), published as Li et al., "Backdoor Attack in the Physical World" (ICLR 2021 Workshop on
Robust and Reliable Machine Learning in the Real World). A static-trigger backdoor is brittle to
the trigger's location and appearance: a BadNet keys on a patch in the place and at the scale it
was trained with, while the task survives a small change of both. ShrinkPad resizes each input
down by ``shrink`` of its side (Le Roux et al. use the authors' 12.5%) and zero-pads it back to
its size, with the shrunk image placed at a random offset (``padding="random"``, the paper's
ShrinkPad) or in the middle (``"center"``). The model is used unchanged and only queried: a
black-box purifier.

The random offsets are drawn from the defense's seed on every call, so the served system is
deterministic. The resize is kornia's bilinear with antialiasing (``"nearest"`` optional).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from arena.core.config import Valid, param
from arena.core.infer import predict
from arena.data.splits import Split
from arena.models.base import ArenaNet
from strategies.defenses.base import Defense, DefenseConfig, Deployment, Panel
from strategies.registry import register_defense

SHOWN = 8  # images per panel of show


@dataclass(frozen=True)
class ShrinkPadConfig(DefenseConfig):
    shrink: float = param(
        0.125,
        low=0.05,
        high=0.25,
        valid=Valid(0, 1, low_open=True, high_open=True),
        help="side removed by the shrink, as a share",
    )
    padding: str = param("random", choices=("random", "center"), help="where the image is put")
    interpolation: str = param("bilinear", choices=("bilinear", "nearest"), help="resize mode")


def shrink_pixels(share: float, side: int) -> int:
    """Pixels a side of ``side`` pixels loses: ``share`` of it, at least 1, leaving at least 1."""
    return min(side - 1, max(1, round(share * side)))


def shrink_pad(
    x: Tensor,
    shrink: float,
    *,
    padding: str = "random",
    interpolation: str = "bilinear",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Images ``x`` (N, C, H, W) resized to ``(H - s, W - s)`` and zero-padded back to
    ``(H, W)``, each shrunk image at an offset in ``[0, s]`` per axis (random, or ``s // 2``
    for ``padding="center"``), ``s`` as :func:`shrink_pixels` says for each axis."""
    import kornia.geometry.transform as KT

    n, c, h, w = x.shape
    sh, sw = shrink_pixels(shrink, h), shrink_pixels(shrink, w)
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"unknown interpolation {interpolation!r}; choose bilinear or nearest")
    small = KT.resize(
        x, (h - sh, w - sw), interpolation=interpolation, antialias=interpolation == "bilinear"
    )
    if padding == "random":
        top = torch.randint(sh + 1, (n,), generator=generator)
        left = torch.randint(sw + 1, (n,), generator=generator)
    elif padding == "center":
        top, left = torch.full((n,), sh // 2), torch.full((n,), sw // 2)
    else:
        raise ValueError(f"unknown padding {padding!r}; choose random or center")
    rows = top[:, None] + torch.arange(h - sh)  # (N, H - s)
    cols = left[:, None] + torch.arange(w - sw)
    out = torch.zeros_like(x)
    index = torch.arange(n)[:, None, None]
    out[index, :, rows[:, :, None], cols[:, None, :]] = small.permute(0, 2, 3, 1)
    return out


@dataclass
class ShrinkPadDeployment(Deployment):
    config: ShrinkPadConfig = ShrinkPadConfig()
    seed: int = 0

    def purify(self, x: Tensor) -> Tensor:
        if len(x) == 0:
            return x
        cfg = self.config
        generator = torch.Generator().manual_seed(self.seed)
        return shrink_pad(
            x,
            cfg.shrink,
            padding=cfg.padding,
            interpolation=cfg.interpolation,
            generator=generator,
        )


@register_defense
class ShrinkPad(Defense[ShrinkPadConfig]):
    name = "shrinkpad"
    version = 1
    summary = "shrink test inputs and pad them back at a random place; Li et al."
    kind = "purifier"
    access = "black-box"
    caches_fit = False  # the deployment is its config: nothing to fit
    config_cls = ShrinkPadConfig

    def fit_copy(self, model: ArenaNet, clean: Split) -> Deployment:
        cfg = self.config
        _, h, w = model.image_shape
        return ShrinkPadDeployment(
            model,
            details={"shrink_pixels": [shrink_pixels(cfg.shrink, h), shrink_pixels(cfg.shrink, w)]},
            config=cfg,
            seed=self.seed,
        )

    def show(self, deployment: Deployment, clean: Split, triggered: Split) -> list[Panel]:
        panels = []
        for what, split in (("triggered", triggered), ("clean", clean)):
            x = split.x[:SHOWN]
            if len(x) == 0:
                continue
            before, after = predict(deployment.model, x), deployment.predict(x)
            panels += [
                Panel(
                    f"{what} inputs (label: the model's answer)",
                    "images",
                    x,
                    labels=tuple(str(int(k)) for k in before),
                ),
                Panel(
                    f"{what} inputs shrunk and padded (label: the model's answer)",
                    "images",
                    deployment.purify(x),
                    labels=tuple(str(int(k)) for k in after),
                ),
            ]
        return panels
