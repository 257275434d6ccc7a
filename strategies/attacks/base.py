"""The attack interface: an attack changes data, never owns a training loop.

A concrete attack implements one method, :meth:`Attack.stamp`, which puts its trigger on a
batch of images. The base class does the chores every attack shares: choosing which training
images to poison (``poison_rate`` of the training set, drawn from the classes the mapping
moves), mapping labels to targets (all-to-one or all-to-all), and building the poisoned test
set that attack success is measured on (test images of non-target classes).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from arena.data.splits import Split
from arena.params import LAST_CLASS, param
from arena.train import BatchHook

MAPPINGS = ("all-to-one", "all-to-all")


@dataclass(frozen=True)
class AttackConfig:
    """Fields every attack shares; subclasses add their trigger's parameters."""

    poison_rate: float = param(
        0.1, low=0.01, high=0.3, log=True, help="share of the training set that is poisoned"
    )
    target: int = param(0, low=0, high=LAST_CLASS, help="target class (all-to-one)")
    mapping: str = param(
        "all-to-one", choices=MAPPINGS, help="all-to-one: y -> target; all-to-all: y -> y+1"
    )


@dataclass(frozen=True)
class Poisoned:
    """A poisoned training set and which of its images were changed."""

    data: Split
    poisoned: torch.Tensor  # bool (N,): images that carry the trigger and a flipped label


class Attack(ABC):
    """Base of every attack. Subclasses set ``name``, ``summary``, ``config_cls``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    config_cls: ClassVar[type[AttackConfig]] = AttackConfig
    clean_label: ClassVar[bool] = False

    def __init__(
        self,
        config: AttackConfig | None = None,
        *,
        image_shape: tuple[int, int, int],
        num_classes: int,
    ) -> None:
        self.config = config if config is not None else self.config_cls()
        if not isinstance(self.config, self.config_cls):
            raise TypeError(f"{self.name} takes a {self.config_cls.__name__}")
        if not 0 <= self.config.target < num_classes:
            raise ValueError(
                f"target {self.config.target} is not a class of this dataset (0..{num_classes - 1})"
            )
        if self.config.mapping not in MAPPINGS:
            raise ValueError(f"unknown mapping {self.config.mapping!r}; choose {MAPPINGS}")
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes

    @abstractmethod
    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A triggered copy of images ``x`` (N, C, H, W) in [0, 1]; ``x`` is not changed."""

    def target_of(self, y: torch.Tensor) -> torch.Tensor:
        """The label a triggered image of true class ``y`` should get."""
        if self.config.mapping == "all-to-all":
            return (y + 1) % self.num_classes
        return torch.full_like(y, self.config.target)

    def eligible(self, y: torch.Tensor) -> torch.Tensor:
        """Images whose label the backdoor changes (all-to-one leaves the target class out)."""
        return self.target_of(y) != y

    def choose(self, mask: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` indices drawn without replacement where ``mask`` is true."""
        candidates = mask.nonzero().flatten()
        count = min(count, len(candidates))
        return candidates[torch.randperm(len(candidates), generator=generator)[:count]]

    def poison(self, train: Split, generator: torch.Generator) -> Poisoned:
        """Stamp ``poison_rate`` of the training set and flip those labels to their targets."""
        index = self.choose(
            self.eligible(train.y), round(self.config.poison_rate * len(train)), generator
        )
        x, y = train.x.clone(), train.y.clone()
        x[index] = self.stamp(train.x[index], generator)
        y[index] = self.target_of(train.y[index])
        mask = torch.zeros(len(train), dtype=torch.bool)
        mask[index] = True
        return Poisoned(Split(x, y), mask)

    def poisoned_test(self, test: Split, generator: torch.Generator) -> Split:
        """Triggered test images of the eligible classes, labelled with their targets."""
        keep = self.eligible(test.y)
        return Split(self.stamp(test.x[keep], generator), self.target_of(test.y[keep]))

    def batch_hook(self) -> BatchHook | None:
        """A per-batch change to training (for attacks that poison on the fly); none here."""
        return None
