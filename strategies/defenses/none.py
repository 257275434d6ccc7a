"""No defense: the BadNet is deployed as it is (the game's baseline column)."""

from __future__ import annotations

from torch import nn

from arena.data.splits import Split
from strategies.defenses.base import Defense, DefenseConfig, Deployment
from strategies.registry import register_defense


@register_defense
class NoDefense(Defense[DefenseConfig]):
    name = "none"
    version = 1
    summary = "no defense: deploy the model as it is"
    kind = "none"
    access = "black-box"
    caches_fit = False  # nothing to fit

    def fit_copy(self, model: nn.Module, clean: Split) -> Deployment:
        return Deployment(model)
