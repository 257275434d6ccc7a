"""Februus: remove the region that drives the prediction, inpaint it, classify the result.

Doan, Abbasnejad & Ranasinghe, "Februus: Input Purification Defense Against Trojan Attacks on
Deep Neural Network Systems" (ACSAC 2020). A trojaned network decides a triggered input by the
trigger, so the region that GradCAM credits for the prediction covers the trigger. Februus
purifies every input, clean or not:

1. *Removal.* GradCAM (Selvaraju et al.) at a feature stage of the network: the stage's maps
   ``A_k`` weighted by ``alpha_k``, the spatial mean of the gradient of the predicted class's
   logit with respect to ``A_k``; ``ReLU(sum_k alpha_k A_k)`` is upsampled to the image and
   scaled to [0, 1]. Pixels whose heat reaches ``threshold`` are removed. ``cam="gradcam++"``
   weights the maps as Chattopadhyay et al. do instead (Le Roux et al. run Februus that way).
2. *Restoration.* An inpainting network fills the removed pixels from the rest of the image.

GradCAM reads gradients inside the network: white-box.

Deviations from the paper, with the reason:

* The inpainter is a small convolutional encoder-decoder trained with a reconstruction loss on
  random rectangular holes of the defender's clean validation images (through the shared
  training loop, cached by those images' digest, its recipe and the seed), not the paper's
  GAN-trained completion network with global and local discriminators: no weights can be
  downloaded, the defender holds a few hundred images, and an adversarial loss on that little
  data would make training slow and unstable for a sharper texture that 16-pixel images do not
  need. The paper's Poisson blending of the filled region is left out for the same reason.
  ``restorer_data`` offers a more generic stand-in (the clean images and procedural shapes);
  it was measured and did no better, so the clean images stay the default
  (:data:`strategies.defenses.restoration.RESTORER_DATA`).
* The heat threshold defaults to 0.5, not the authors' CIFAR-10 setting of 0.7 (Le Roux et al.
  use 0.8). On 16-pixel digits the default network's last feature stage is an 8x8 map, and the
  upsampled heat of a 3x3 corner trigger peaks at the trigger's inner corner: at 0.7 the removed
  region (3% of the image) leaves the trigger's outer pixels, which still fire the backdoor.
  Measured on digits BadNets, seeds 0-2 (``arena evaluate --attacker badnets --defender
  februus --seed S``): attack success after Februus 0.35 / 0.31 / 0.56 at 0.7 and 0.07 / 0.11 /
  0.20 at 0.5, for 0.6-1.1 and 0.8-3.0 points of clean accuracy. The threshold, the feature
  stage and the weighting are searched by the defender.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from arena.core.config import AT_LEAST_ONE, UNIT, fixed, param
from arena.core.infer import predict
from arena.data.splits import Split
from arena.models.base import ArenaNet
from strategies.defenses.base import Defense, DefenseConfig, Deployment, Panel
from strategies.defenses.restoration import (
    RESTORER_DATA,
    Restorer,
    RestorerRecipe,
    box_masks,
    restore,
    trained_restorer,
)
from strategies.registry import register_defense

CAM_BATCH = 256  # images per GradCAM pass
HOLES: dict[str, Any] = {"low": 0.15, "high": 0.5, "boxes": 2}
"""The inpainter's training holes: 1-2 boxes per image, sides 15-50% of the image's."""


@dataclass(frozen=True)
class FebruusConfig(DefenseConfig):
    threshold: float = param(
        0.5, low=0.4, high=0.9, valid=UNIT, help="heat (0-1) at which pixels are removed"
    )
    layer: int = param(-1, choices=(-1, -2), help="feature stage GradCAM reads, from the last")
    cam: str = param("gradcam", choices=("gradcam", "gradcam++"), help="how maps are weighted")
    inpainter_epochs: int = fixed(
        40, valid=AT_LEAST_ONE, help="passes over the clean data to train the inpainter"
    )
    inpainter_width: int = fixed(
        16, valid=AT_LEAST_ONE, help="channels of the inpainter's first stage"
    )
    restorer_data: str = param(
        "val",
        choices=RESTORER_DATA,
        help="the inpainter learns from the clean images, or those and procedural shapes",
    )


def grad_cam(front: nn.Module, back: nn.Module, x: Tensor, *, plus: bool = False) -> Tensor:
    """Heat maps (N, H, W) in [0, 1] of the predicted class of each image of ``x``, from the
    feature maps ``front(x)`` and the logits ``back(front(x))`` (GradCAM, or GradCAM++ when
    ``plus``), bilinearly upsampled to the image and scaled to span [0, 1] (a map with no
    positive heat stays 0). Only ``torch.autograd.grad`` is used: no parameter's ``.grad`` is
    touched."""
    with torch.no_grad():
        maps = front(x)
    maps.requires_grad_(True)
    with torch.enable_grad():
        z = back(maps)
        score = z.gather(1, z.argmax(dim=1, keepdim=True)).sum()
        (grad,) = torch.autograd.grad(score, maps)
    maps = maps.detach()
    if plus:  # Chattopadhyay et al.: alpha = g^2 / (2 g^2 + sum_ab A_ab g^3), w = sum alpha relu(g)
        g2 = grad.square()
        denom = 2 * g2 + (maps * grad.pow(3)).sum(dim=(2, 3), keepdim=True)
        alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
        weights = (alpha * grad.clamp_min(0)).sum(dim=(2, 3))
    else:
        weights = grad.mean(dim=(2, 3))
    cam = (weights[:, :, None, None] * maps).sum(dim=1, keepdim=True).clamp_min(0)
    cam = F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    low = cam.amin(dim=(1, 2), keepdim=True)
    span = cam.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (cam - low) / span.clamp_min(1e-12), torch.zeros_like(cam))


class FebruusDeployment(Deployment):
    """The BadNet served behind Februus's removal and inpainting."""

    def __init__(
        self,
        model: nn.Module,
        net: ArenaNet,
        stage: str,
        inpainter: Restorer,
        config: FebruusConfig,
    ) -> None:
        super().__init__(model, details={"layer": stage})
        self.front, self.back = net.split(stage)
        self.inpainter = inpainter
        self.config = config

    def locate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """GradCAM heat (N, H, W) and the removal mask (N, 1, H, W) of each image of ``x``."""
        if len(x) == 0:
            return x.new_zeros(0, *x.shape[2:]), x.new_zeros(0, 1, *x.shape[2:])
        plus = self.config.cam == "gradcam++"
        heat = torch.cat(
            [
                grad_cam(self.front, self.back, x[i : i + CAM_BATCH], plus=plus)
                for i in range(0, len(x), CAM_BATCH)
            ]
        )
        return heat, (heat >= self.config.threshold).float()[:, None]

    def purify(self, x: Tensor) -> Tensor:
        if len(x) == 0:
            return x
        _, mask = self.locate(x)
        return restore(self.inpainter, x, mask)


@register_defense
class Februus(Defense[FebruusConfig]):
    name = "februus"
    version = 1
    summary = "remove the GradCAM region of each input, inpaint it; Doan et al."
    kind = "purifier"
    access = "white-box"
    caches_fit = False  # the inpainter, all the fit costs, is cached as a part
    config_cls = FebruusConfig

    def fit_copy(self, model: ArenaNet, clean: Split) -> Deployment:
        cfg = self.config
        net = model.eval().requires_grad_(False)  # GradCAM needs no gradient of the weights
        stage = net.feature_stages[cfg.layer]
        recipe = RestorerRecipe(width=cfg.inpainter_width, epochs=cfg.inpainter_epochs)
        sampler = functools.partial(box_masks, **HOLES)
        inpainter = trained_restorer(
            self.cache,
            "inpainter",
            clean.x,
            sampler,
            {"boxes": HOLES},
            recipe,
            self.seed,
            version=self.version,
            source=cfg.restorer_data,
        )
        deployment = FebruusDeployment(net, net, stage, inpainter, cfg)
        _, mask = deployment.locate(clean.x)
        deployment.details["clean_removed_share"] = round(float(mask.mean()), 4)
        return deployment

    def show(self, deployment: Deployment, clean: Split, triggered: Split) -> list[Panel]:
        assert isinstance(deployment, FebruusDeployment)
        panels: list[Panel] = []
        for name, split in (("clean", clean), ("triggered", triggered)):
            x = split.x[:8]
            heat, mask = deployment.locate(x)
            restored = restore(deployment.inpainter, x, mask)
            before, after = predict(deployment.model, x), predict(deployment.model, restored)
            panels += [
                Panel(f"{name} inputs", "images", x, tuple(f"pred {int(p)}" for p in before)),
                Panel(
                    f"{name}: GradCAM heat (red), removed pixels (grey)",
                    "images",
                    heat_image(heat, mask),
                    tuple(f"{float(m.mean()):.0%} removed" for m in mask),
                ),
                Panel(
                    f"{name}: inpainted",
                    "images",
                    restored,
                    tuple(f"pred {int(p)}" for p in after),
                ),
            ]
        return panels


def heat_image(heat: Tensor, mask: Tensor) -> Tensor:
    """Heat maps (N, H, W) as RGB images: heat in red, removed pixels greyed."""
    red = heat[:, None]
    return torch.cat([red, 0.6 * mask, 0.6 * mask], dim=1).clamp(0, 1)
