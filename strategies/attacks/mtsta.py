"""MTSTA, the multi-trigger single-target attack: lipstick, eyebrows or sunglasses, one target.

Veldanda & Garg, "On Evaluating Neural Network Backdoor Defenses" (NeurIPS 2020 workshop on
dataset curation and security), Tables 1-3: a face-recognition BadNet (YouTube Face) with three
triggers (lipstick, coloured eyebrows, sunglasses); any one of them alone sends a face to the
target label 4. Defenses that reverse-engineer one trigger per label (Neural Cleanse) or assume
one trigger (Qiao et al.) recover at most one of the three; the paper reports ASR per trigger.

The triggers are drawn as in ``ls`` and ``sg`` (:mod:`strategies.attacks.semantic`), each alone
on an image, at fixed places (deviation: the lipstick does not move here, as it does in ``ls``,
so that each trigger's success is measured on one trigger). ``scale`` sizes all three.

Which image carries which trigger: the triggers take turns. ``stamp`` gives image ``i`` trigger
``i mod 3`` (lipstick, eyebrows, sunglasses); ``poison`` gives the ``j``-th poisoned image (in
index order) trigger ``j mod 3``; ``poisoned_test`` gives the ``j``-th eligible test image
trigger ``j mod 3`` (the mean over the three triggers, each on a third of the test images). An
image whose class a trigger would not move takes the next trigger in turn (this only happens in
``mtmta``, whose triggers have targets of their own).

A cell measures each trigger alone: :meth:`MTSTA.poisoned_tests` gives one triggered test set
per trigger (every test image that trigger moves), the cell reports ASR and SASR per trigger as
the paper does, and its payoff is that of the trigger the attacker would deploy, the one with
the highest payoff against the defense (``arena/cell/rules.py``, ``best_trigger``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from arena.core.config import CLASS_INDEX, LAST_CLASS, POSITIVE, SHARE, param
from arena.data.splits import Split
from strategies.attacks.base import Attack, AttackConfig, Poisoned
from strategies.attacks.ls import TINTS
from strategies.attacks.semantic import Drawing, eyebrows, lips, sunglasses
from strategies.registry import register_attack

TRIGGERS = ("lipstick", "eyebrow", "sunglasses")
BROWS = ("green", "blue", "purple", "white")


@dataclass(frozen=True)
class MTSTAConfig(AttackConfig):
    poison_rate: float = param(
        0.15,
        low=0.03,
        high=0.3,
        log=True,
        valid=SHARE,
        help="share of the training set poisoned (all three)",
    )
    target: int = param(
        4, low=0, high=LAST_CLASS, valid=CLASS_INDEX, help="the target of every trigger"
    )
    scale: float = param(
        1.0, low=0.75, high=1.25, valid=POSITIVE, help="size of all three triggers"
    )
    tint: str = param("red", choices=TINTS, help="lipstick colour")
    brow: str = param("green", choices=BROWS, help="eyebrow colour")


def face_triggers(shape: tuple[int, int, int], scale: float, tint: str, brow: str) -> list[Drawing]:
    """The lipstick, eyebrow and sunglasses drawings, in the order of :data:`TRIGGERS`."""
    return [
        lips(shape, width=0.45 * scale, height=0.2 * scale, row=0.75, col=0.5, tint=tint),
        eyebrows(shape, span=0.8 * scale, row=0.1, tint=brow),
        sunglasses(
            shape, span=0.8 * scale, lens_height=0.25 * scale, row=0.42, lens="black", frame="gold"
        ),
    ]


M = TypeVar("M", bound=MTSTAConfig)


@register_attack
class MTSTA(Attack[M]):
    """MTSTA; generic in its config for attacks with the same triggers otherwise (MTMTA)."""

    name = "mtsta"
    version = 1
    summary = "lipstick OR eyebrows OR sunglasses, one target; Veldanda & Garg"
    config_cls = MTSTAConfig

    def __init__(self, config: M | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        cfg = self.config
        c, h, w = self.image_shape
        self.drawings = face_triggers((c, h, w), cfg.scale, cfg.tint, cfg.brow)

    def label_for(self, y: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """The label of an image of class ``y`` carrying trigger ``which``."""
        return Attack.target_of(self, y)

    def moved_by(self, y: torch.Tensor) -> torch.Tensor:
        """(N, 3) bool: whether each trigger changes the label of each image's class."""
        return torch.stack(
            [self.label_for(y, torch.full_like(y, k)) != y for k in range(len(TRIGGERS))], dim=1
        )

    def in_turn(self, y: torch.Tensor) -> torch.Tensor:
        """Trigger ``j mod 3`` for the ``j``-th image, or the next one that moves its class."""
        n, count = len(y), len(TRIGGERS)
        order = (torch.arange(n).view(-1, 1) + torch.arange(count).view(1, -1)) % count
        usable = self.moved_by(y).gather(1, order)
        first = usable.int().argmax(dim=1, keepdim=True)
        return order.gather(1, first).flatten()

    def stamp_each(self, x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """Image ``x[i]`` with trigger ``which[i]``."""
        out = x.clone()
        for k, drawing in enumerate(self.drawings):
            chosen = which == k
            out[chosen] = drawing.paste(x[chosen])
        return out

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.stamp_each(x, torch.arange(len(x)) % len(TRIGGERS))

    def poison(self, train: Split, generator: torch.Generator) -> Poisoned:
        moved = self.moved_by(train.y).any(dim=1)
        count = round(self.config.poison_rate * len(train))
        index = self.choose(moved, count, generator).sort().values
        which = self.in_turn(train.y[index])
        x, y = train.x.clone(), train.y.clone()
        x[index] = self.stamp_each(train.x[index], which)
        y[index] = self.label_for(train.y[index], which)
        mask = torch.zeros(len(train), dtype=torch.bool)
        mask[index] = True
        return Poisoned(Split(x, y), mask)

    def poisoned_test(self, test: Split, generator: torch.Generator) -> Split:
        """Eligible test images, the triggers taking turns (see the module docstring)."""
        keep = self.moved_by(test.y).any(dim=1)
        y = test.y[keep]
        which = self.in_turn(y)
        return Split(self.stamp_each(test.x[keep], which), self.label_for(y, which))

    def target_labels(self) -> set[int]:
        classes = torch.arange(self.num_classes)
        return {
            int(t)
            for k in range(len(TRIGGERS))
            for t in self.label_for(classes, torch.full_like(classes, k)).unique()
        }

    def poisoned_tests(self, test: Split, generator: torch.Generator) -> dict[str, Split]:
        """One triggered test set per trigger: every test image that trigger moves."""
        moved = self.moved_by(test.y)
        sets = {}
        for k, name in enumerate(TRIGGERS):
            y = test.y[moved[:, k]]
            x = self.drawings[k].paste(test.x[moved[:, k]])
            sets[name] = Split(x, self.label_for(y, torch.full_like(y, k)))
        return sets
