"""DeepSweep: fine-tune under augmentation, and transform every input before inference.

Qiu, Zeng, Guo, Zhang, Qiu & Thuraisingham, "DeepSweep: An Evaluation Framework for Mitigating
DNN Backdoor Attacks using Data Augmentation" (AsiaCCS 2021; Le Roux et al. cite it as Zeng et
al.). The defense has two stages, each an augmentation policy: (1) the suspicious model is
fine-tuned on the defender's clean data augmented by one policy, which weakens the backdoor's
hold on the features it keys on; (2) every test input is transformed by another policy, so that
a trigger no longer looks like the one the backdoor was planted with. The authors evaluate 71
augmentation functions and compose the few that work best; spatial transforms (a random affine
warp) and smoothing filters (a median filter) are among them, and Le Roux et al. fine-tune for
10 epochs.

Here each policy is a composition of those two functions, both in kornia: ``affine`` (a random
rotation, translation and scaling about the centre, zero-filled, its range scaled by a
strength: at 1, up to 10 degrees, 10% of the side and 10% of scale) and ``median`` (a median
filter of side ``median``). The search space is the two policies, each stage's affine strength,
the median's side, and the fine-tune's length and learning rate. By default the fine-tune
augments at strength 1 and inference at 0.5: on 16-pixel digits a strength-1 affine at
inference costs 6-8 points of clean accuracy (measured on the default BadNet), more than the
defender's gate allows, while a model fine-tuned under the stronger warp serves the weaker one
at 1-3 points.

Deviations: the paper's wider menu (optical distortion, grid masks, compression, colour
transforms) is left out, and fine-tuning uses Adam with a cosine decay through the shared
:func:`strategies.defenses.tuning.fine_tune`. The inference transform draws its randomness from
the defense's seed on every call, so the served system is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from arena.core.config import NON_NEGATIVE, POSITIVE, Valid, param
from arena.core.infer import accuracy
from arena.data.splits import Split
from arena.models.base import ArenaNet
from strategies.defenses.base import Defense, DefenseConfig, Deployment, Panel
from strategies.defenses.tuning import fine_tune
from strategies.registry import register_defense

POLICIES = ("none", "affine", "median", "affine+median")
MAX_DEGREES, MAX_SHIFT, MAX_SCALE = 10.0, 0.1, 0.1  # the affine range at strength 1
AFFINE_STRENGTH = Valid(0, 1 / MAX_SCALE, high_open=True)
"""Valid affine strengths: from none up to (not at) the one where a scale of ``1 - MAX_SCALE *
strength`` could reach 0 and collapse the image."""
SHOWN = 8


@dataclass(frozen=True)
class DeepSweepConfig(DefenseConfig):
    train_policy: str = param("affine", choices=POLICIES, help="augmentation while fine-tuning")
    test_policy: str = param("affine+median", choices=POLICIES, help="transform of test inputs")
    train_strength: float = param(
        1.0, low=0.25, high=2.0, valid=AFFINE_STRENGTH, help="affine range while fine-tuning"
    )
    test_strength: float = param(
        0.5, low=0.1, high=1.0, valid=AFFINE_STRENGTH, help="affine range at inference"
    )
    median: int = param(3, choices=(3, 5), help="median filter side, pixels")
    epochs: int = param(
        10, low=2, high=20, valid=NON_NEGATIVE, help="fine-tuning epochs on the clean data"
    )
    lr: float = param(
        3e-3, low=1e-4, high=1e-2, log=True, valid=POSITIVE, help="fine-tuning learning rate"
    )


def random_affine(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Each image of ``x`` rotated by up to ``10 * strength`` degrees, shifted by up to
    ``0.1 * strength`` of its side and scaled by ``1 +- 0.1 * strength`` (uniform draws from
    ``generator``), about its centre, with zeros outside. ``strength=0`` leaves ``x`` as it is."""
    import kornia.geometry.transform as KT

    n, _, h, w = x.shape
    if n == 0 or strength == 0:
        return x

    def uniform(*shape: int) -> Tensor:
        return torch.rand(shape, generator=generator) * 2 - 1

    angle = uniform(n) * MAX_DEGREES * strength
    shift = uniform(n, 2) * MAX_SHIFT * strength * torch.tensor([w, h], dtype=torch.float32)
    scale = (1 + uniform(n) * MAX_SCALE * strength)[:, None].expand(n, 2)
    center = torch.tensor([(w - 1) / 2, (h - 1) / 2]).expand(n, 2)
    matrix = KT.get_affine_matrix2d(shift, center, scale, angle)[:, :2]
    return KT.warp_affine(x, matrix, (h, w), padding_mode="zeros", align_corners=True)


def apply_policy(
    x: Tensor, policy: str, strength: float, median: int, generator: torch.Generator
) -> Tensor:
    """``x`` through the functions of ``policy`` (``+``-joined, in order): an affine warp of
    ``strength`` (:func:`random_affine`), a median filter of side ``median``."""
    import kornia.filters as KF

    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    for op in policy.split("+"):
        if op == "affine":
            x = random_affine(x, strength, generator)
        elif op == "median" and len(x):
            x = KF.median_blur(x, median)
    return x


@dataclass
class DeepSweepDeployment(Deployment):
    config: DeepSweepConfig = DeepSweepConfig()
    seed: int = 0

    def purify(self, x: Tensor) -> Tensor:
        generator = torch.Generator().manual_seed(self.seed + 2)
        cfg = self.config
        return apply_policy(x, cfg.test_policy, cfg.test_strength, cfg.median, generator)


@register_defense
class DeepSweep(Defense[DeepSweepConfig]):
    name = "deepsweep"
    version = 1
    summary = "fine-tune under augmentation, transform test inputs (affine, median); Qiu et al."
    kind = "purifier"
    access = "white-box"
    config_cls = DeepSweepConfig

    def fit_copy(self, model: ArenaNet, clean: Split) -> Deployment:
        cfg = self.config
        net = model.eval()
        before = accuracy(net, clean.x, clean.y)

        def augment(x: Tensor, generator: torch.Generator) -> Tensor:
            return apply_policy(x, cfg.train_policy, cfg.train_strength, cfg.median, generator)

        result = fine_tune(
            net, clean, epochs=cfg.epochs, lr=cfg.lr, seed=self.seed, transform=augment
        )
        net.requires_grad_(False)
        deployment = DeepSweepDeployment(net, config=cfg, seed=self.seed)
        deployment.details = {
            "fine_tune_loss": result.final_loss,
            "val_accuracy": {
                "before": before,
                "fine_tuned": accuracy(net, clean.x, clean.y),
                "served": float((deployment.predict(clean.x) == clean.y).float().mean()),
            },
        }
        return deployment

    def show(self, deployment: Deployment, clean: Split, triggered: Split) -> list[Panel]:
        panels = []
        for what, split in (("triggered", triggered), ("clean", clean)):
            x = split.x[:SHOWN]
            if len(x) == 0:
                continue
            panels.append(
                Panel(
                    f"{what} inputs after the test policy (label: the repaired model's answer)",
                    "images",
                    deployment.purify(x),
                    labels=tuple(str(int(k)) for k in deployment.predict(x)),
                )
            )
        return panels
