"""STRIP: reject inputs whose prediction survives superimposition with clean images.

Gao et al., "STRIP: A Defence Against Trojan Attacks on Deep Neural Networks" (ACSAC 2019).
A clean input blended with random clean images gets scattered predictions (high entropy); a
triggered input keeps predicting the target because the trigger survives the blend (low
entropy). Gao et al. superimpose by adding the two images (saturating at white): ``blend=add``;
``blend=average`` mixes them as ``(1 - alpha) x + alpha o`` instead. The entropy threshold is set
on the defender's clean validation data so that a chosen share of clean inputs (``frr_target``)
would be rejected, as Le Roux et al. do with 1%.

The clean data is both the pool of overlays and the calibration set; an image is never blended
with itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from arena.core.config import AT_LEAST_ONE, UNIT, param
from arena.core.infer import logits
from arena.data.splits import Split
from strategies.defenses.base import Defense, DefenseConfig, Deployment, Panel
from strategies.registry import register_defense


@dataclass(frozen=True)
class StripConfig(DefenseConfig):
    overlays: int = param(
        48, low=4, high=64, valid=AT_LEAST_ONE, help="clean images blended with each input"
    )
    blend: str = param("add", choices=("add", "average"), help="add: min(1, x + o) (Gao et al.)")
    alpha: float = param(
        0.5, low=0.2, high=0.8, valid=UNIT, help="overlay weight when blend=average"
    )
    frr_target: float = param(
        0.015,
        low=0.005,
        high=0.05,
        log=True,
        valid=UNIT,
        help="share of clean data the threshold rejects",
    )


def blend_entropy(
    model: nn.Module,
    x: torch.Tensor,
    pool: torch.Tensor,
    config: StripConfig,
    generator: torch.Generator,
    *,
    self_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean prediction entropy of each input blended with ``config.overlays`` random pool
    images. ``self_index[i]``, when given, is the pool position of ``x[i]``, never drawn for it."""
    if self_index is None:
        pick = torch.randint(len(pool), (len(x), config.overlays), generator=generator)
    else:  # draw from the other len(pool) - 1 images
        pick = torch.randint(len(pool) - 1, (len(x), config.overlays), generator=generator)
        pick += (pick >= self_index[:, None]).long()
    overlay = pool[pick]  # (N, overlays, C, H, W)
    if config.blend == "add":
        blended = (x[:, None] + overlay).clamp_max(1.0)
    elif config.blend == "average":
        blended = (1 - config.alpha) * x[:, None] + config.alpha * overlay
    else:
        raise ValueError(f"unknown blend {config.blend!r}; choose add or average")
    p = logits(model, blended.flatten(0, 1)).softmax(dim=1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum(dim=1)
    return entropy.view(len(x), config.overlays).mean(dim=1)


@dataclass
class StripDeployment(Deployment):
    pool: torch.Tensor | None = None
    threshold: float = 0.0
    config: StripConfig | None = None
    seed: int = 0

    def entropy(self, x: torch.Tensor) -> torch.Tensor:
        assert self.pool is not None and self.config is not None
        generator = torch.Generator().manual_seed(self.seed + 1)
        return blend_entropy(self.model, x, self.pool, self.config, generator)

    def accept(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) == 0:
            return torch.ones(0, dtype=torch.bool)
        return self.entropy(x) > self.threshold


@register_defense
class Strip(Defense[StripConfig]):
    name = "strip"
    version = 1
    summary = "reject inputs with low entropy under superimposition; Gao et al."
    kind = "filter"
    access = "black-box"
    config_cls = StripConfig

    def fit_copy(self, model: nn.Module, clean: Split) -> Deployment:
        cfg = self.config
        deployment = StripDeployment(model, pool=clean.x, config=cfg, seed=self.seed)
        scores = blend_entropy(
            model, clean.x, clean.x, cfg, self.generator(), self_index=torch.arange(len(clean))
        )
        deployment.threshold = float(torch.quantile(scores, cfg.frr_target))
        deployment.details = {
            "threshold": deployment.threshold,
            "clean_entropy_median": float(scores.median()),
        }
        return deployment

    def show(self, deployment: Deployment, clean: Split, triggered: Split) -> list[Panel]:
        """Histograms of the entropy of clean and triggered inputs under superimposition, with
        the threshold: inputs left of it are rejected."""
        assert isinstance(deployment, StripDeployment) and deployment.pool is not None
        cfg = self.config
        if clean.x is deployment.pool:  # as calibrated: never blended with itself
            model, own = deployment.model, torch.arange(len(clean))
            scores = blend_entropy(model, clean.x, clean.x, cfg, self.generator(), self_index=own)
        else:
            scores = deployment.entropy(clean.x)
        attacked = deployment.entropy(triggered.x)
        passed = float((attacked > deployment.threshold).float().mean()) if len(attacked) else 0.0
        return [
            Panel(
                f"entropy of inputs superimposed with {cfg.overlays} clean images; "
                f"{passed:.0%} of triggered inputs pass the threshold",
                "histogram",
                {"clean": scores, "triggered": attacked},
                labels=("mean prediction entropy", "threshold"),
                marker=deployment.threshold,
            )
        ]
