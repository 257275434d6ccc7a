"""No defense: the BadNet is deployed as it is (the game's baseline column)."""

from __future__ import annotations

from arena.data.splits import Split
from arena.models.base import ArenaNet
from strategies.defenses.base import Defense, Deployment
from strategies.registry import register_defense


@register_defense
class NoDefense(Defense):
    name = "none"
    summary = "no defense: deploy the model as it is"
    kind = "none"
    access = "black-box"

    def fit(self, model: ArenaNet, clean: Split) -> Deployment:
        return Deployment(model)
