"""The attack interface: an attack changes data, never owns a training loop.

A concrete attack implements one method, :meth:`Attack.stamp`, which puts its trigger on a
batch of images. The base class does the chores every attack shares: choosing which training
images to poison (``poison_rate`` of the training set, drawn from the classes the mapping
moves), mapping labels to targets, and building the poisoned test set that attack success is
measured on (test images of the classes the mapping moves).

Target mappings (pitfall 2 of Veldanda & Garg: defenses assume one target label):

* ``all-to-one``: every class goes to ``target``;
* ``all-to-all``: class ``y`` goes to ``y + 1`` (Gu et al.'s all-to-all BadNet);
* ``multi-target``: the classes are shared out among ``MULTI_TARGETS`` targets ``target``,
  ``target + 1``, ... (class ``y`` goes to ``target + y mod MULTI_TARGETS``), so no single label
  collects the backdoor. A class that would map to itself is not poisoned.

Attacks whose parts are trained (a trigger generator) get the artifact ``cache`` so that the
part is trained once per cache (see :func:`arena.core.cache.cached_module`).

The base is generic in its config: ``class BadNets(Attack[BadNetsConfig])`` gives
``self.config`` the type ``BadNetsConfig``, while ``config_cls`` stays the class that the
registry, the CLI and the search spaces read. The base also checks, for every attack, that each
field that declares ``choices`` holds one of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast

import torch
from torch import nn

from arena.core.cache import ArtifactCache
from arena.core.config import CLASS_INDEX, LAST_CLASS, SHARE, Validated, param
from arena.core.train import BatchHook
from arena.data.splits import Split
from strategies.choices import check_choices

MAPPINGS = ("all-to-one", "all-to-all", "multi-target")
MULTI_TARGETS = 3


@dataclass(frozen=True)
class AttackConfig(Validated):
    """Fields every attack shares; subclasses add their trigger's parameters. Every field is
    checked against its valid domain when the config is built (:class:`Validated`)."""

    poison_rate: float = param(
        0.1,
        low=0.01,
        high=0.3,
        log=True,
        valid=SHARE,
        help="share of the training set that is poisoned",
    )
    target: int = param(
        0, low=0, high=LAST_CLASS, valid=CLASS_INDEX, help="target class (all-to-one)"
    )
    mapping: str = param(
        "all-to-one",
        choices=MAPPINGS,
        help="all-to-one: y -> target; all-to-all: y -> y+1; multi-target: y -> target + y mod 3",
    )


@dataclass(frozen=True)
class Poisoned:
    """A poisoned training set and which of its images were changed."""

    data: Split
    poisoned: torch.Tensor  # bool (N,): images that carry the trigger and a flipped label


C = TypeVar("C", bound=AttackConfig)


class Attack(ABC, Generic[C]):
    """Base of every attack. Subclasses set ``name``, ``version``, ``summary``, ``config_cls``
    (the runtime class of ``C``)."""

    name: ClassVar[str]
    version: ClassVar[int]
    """Raised by one whenever a change alters what the attack makes (its poisoned set, its
    triggers, a part it trains): it enters the cache key of every BadNet, trained part and cell
    of the attack, and the name of every duel that plays it, so nothing the old code made is
    replayed. Each attack class declares its own."""
    summary: ClassVar[str]
    config_cls: ClassVar[type[AttackConfig]] = AttackConfig
    clean_label: ClassVar[bool] = False
    trains_with_badnet: ClassVar[bool] = False
    """Whether the attack trains a part together with the BadNet (:meth:`badnet_part`)."""
    unsearched_choices: ClassVar[Mapping[str, tuple[Any, ...]]] = {}
    """Values a field accepts besides the choices its search range declares, by field name:
    they may be asked for, but the studies never search them."""

    def __init__(
        self,
        config: C | None = None,
        *,
        image_shape: tuple[int, int, int],
        num_classes: int,
        cache: ArtifactCache | None = None,
    ) -> None:
        given = config if config is not None else self.config_cls()
        if not isinstance(given, self.config_cls):
            raise TypeError(f"{self.name} takes a {self.config_cls.__name__}")
        check_choices(self.name, given, self.unsearched_choices)
        # config_cls is C at run time (a ClassVar cannot name a type variable)
        self.config: C = cast(C, given)
        if not 0 <= self.config.target < num_classes:
            raise ValueError(
                f"target {self.config.target} is not a class of this dataset (0..{num_classes - 1})"
            )
        self.image_shape = cast(tuple[int, int, int], tuple(image_shape))
        self.num_classes = num_classes
        self.cache = cache

    def prepare(self, train: Split) -> None:
        """Fit what the attack trains (a trigger generator) on the attacker's training data,
        before :meth:`poison`, :meth:`poisoned_test` or :meth:`stamp` run; nothing by default.
        Callers that may skip :meth:`poison` (a BadNet read from the cache) must call it."""
        return None

    @abstractmethod
    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A triggered copy of images ``x`` (N, C, H, W) in [0, 1]; ``x`` is not changed."""

    def target_of(self, y: torch.Tensor) -> torch.Tensor:
        """The label a triggered image of true class ``y`` should get."""
        if self.config.mapping == "all-to-all":
            return (y + 1) % self.num_classes
        if self.config.mapping == "multi-target":
            return (self.config.target + y % MULTI_TARGETS) % self.num_classes
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

    def poisoned_tests(self, test: Split, generator: torch.Generator) -> dict[str, Split]:
        """One triggered test set per trigger, by the trigger's name: an attacker deploys
        whichever trigger survives a defense, so a cell measures each. An attack with one
        trigger has one set, :meth:`poisoned_test`, under the attack's name."""
        return {self.name: self.poisoned_test(test, generator)}

    def target_labels(self) -> set[int]:
        """Every label a trigger of this attack sends some class to: the labels a detector may
        name and be right (one for all-to-one, each class for all-to-all)."""
        return {int(t) for t in self.target_of(torch.arange(self.num_classes)).unique()}

    def batch_hook(self) -> BatchHook | None:
        """A per-batch change to training (for attacks that poison on the fly); none here."""
        return None

    def training_set(
        self, train: Split, generator: torch.Generator
    ) -> tuple[Split, BatchHook | None]:
        """What the BadNet trains on: a training set and a change made to each batch of it.
        By default :meth:`poison` once and :meth:`batch_hook`; an attack whose paper draws its
        poisoned images anew in every batch returns the clean set and a hook that does."""
        return self.poison(train, generator).data, self.batch_hook()

    def badnet_part(self) -> nn.Module | None:
        """The part an attack that :attr:`trains_with_badnet` trained together with the BadNet
        (in :meth:`training_set`'s hook), which its poisoned test set needs and which is
        therefore kept with the BadNet in the cache; ``None`` before that training, and always
        for other attacks."""
        return None

    def load_badnet_part(self, state: dict[str, torch.Tensor]) -> None:
        """Take back the part of :meth:`badnet_part` kept with a cached BadNet."""
        raise NotImplementedError(f"{self.name} trains no part together with the BadNet")
