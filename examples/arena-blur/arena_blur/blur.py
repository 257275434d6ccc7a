"""``blur``: blur every test input with a Gaussian before the model sees it.

The simplest input purifier there is, and one the game should find weak: a blur strong enough
to wash out a small high-contrast patch also costs clean accuracy on 16-pixel images, and a
trigger of low frequency (a frame, a blend, a sinusoid) passes through it. The model is only
queried (black-box) and nothing is fitted: the deployment is its config.
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia.filters
import torch

from arena.core.config import Valid, param
from arena.data.splits import Split
from arena.models.base import ArenaNet
from strategies.defenses.base import Defense, DefenseConfig, Deployment


@dataclass(frozen=True)
class BlurConfig(DefenseConfig):
    sigma: float = param(
        1.0, low=0.3, high=2.0, valid=Valid(0, None, low_open=True), help="Gaussian's sd, pixels"
    )


def kernel_side(sigma: float) -> int:
    """An odd kernel side that holds the Gaussian to three standard deviations."""
    return 2 * max(1, int(3 * sigma + 0.5)) + 1


@dataclass
class BlurDeployment(Deployment):
    sigma: float = 1.0

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) == 0:
            return x
        side = kernel_side(self.sigma)
        return kornia.filters.gaussian_blur2d(
            x, (side, side), (self.sigma, self.sigma), border_type="reflect"
        )


class Blur(Defense[BlurConfig]):
    name = "blur"
    version = 1
    summary = "blur every input with a Gaussian (an example plugin)"
    kind = "purifier"
    access = "black-box"
    caches_fit = False  # nothing is fitted
    config_cls = BlurConfig

    def fit_copy(self, model: ArenaNet, clean: Split) -> Deployment:
        sigma = self.config.sigma
        return BlurDeployment(model, details={"kernel": kernel_side(sigma)}, sigma=sigma)
