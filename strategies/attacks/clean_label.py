"""The shared part of clean-label attacks: only target-class images are poisoned, and no label
ever changes.

A clean-label attack (Turner, Tsipras & Madry, "Label-Consistent Backdoor Attacks", 2019;
Barni, Kallas & Tondi, ICIP 2019) leaves every label as it is, so that a person who inspects
the training set sees correctly labelled images. It adds its trigger to images of the target
class only; the network learns to associate the trigger with that class, and at test time the
trigger on an image of another class pulls it to the target.

``poison_rate`` keeps its meaning (a share of the whole training set), but every poisoned image
comes from the target class, so the count is capped at the size of that class (about a tenth of
the set for ten classes): the range stops at 0.1. The mapping is all-to-one only: with one
trigger and unchanged labels, the trigger can point to one class alone (the field's only
choice, which the attack base enforces).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import torch

from arena.core.config import SHARE, param
from arena.data.splits import Split
from strategies.attacks.base import Attack, AttackConfig, Poisoned


@dataclass(frozen=True)
class CleanLabelConfig(AttackConfig):
    poison_rate: float = param(
        0.08,
        low=0.02,
        high=0.1,
        valid=SHARE,
        help="share of the training set poisoned, all from the target class (capped at it)",
    )
    mapping: str = param(
        "all-to-one",
        choices=("all-to-one",),
        help="clean-label attacks poison target-class images only, so they have one target",
    )


L = TypeVar("L", bound=CleanLabelConfig)


class CleanLabelAttack(Attack[L]):
    """Base of clean-label attacks: subclasses implement :meth:`stamp` (the test-time trigger)
    and may override :meth:`poison_images` (the training-time one, by default the same)."""

    clean_label = True

    def poison_images(
        self, x: torch.Tensor, train: Split, generator: torch.Generator
    ) -> torch.Tensor:
        """The poisoned copies of target-class training images ``x``; ``train`` is the whole
        clean training set, for attacks that learn from it."""
        return self.stamp(x, generator)

    def poison(self, train: Split, generator: torch.Generator) -> Poisoned:
        """Poison ``poison_rate`` of the training set, drawn from the target class; labels stay."""
        count = round(self.config.poison_rate * len(train))
        index = self.choose(train.y == self.config.target, count, generator)
        x = train.x.clone()
        if len(index):
            x[index] = self.poison_images(train.x[index], train, generator)
        mask = torch.zeros(len(train), dtype=torch.bool)
        mask[index] = True
        return Poisoned(Split(x, train.y.clone()), mask)
