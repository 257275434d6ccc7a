"""The players' strategies and the spaces their studies search.

An attacker strategy is an attack family, its config and the BadNet's training recipe (the
recipe belongs to the attacker: pitfall 1 of Veldanda & Garg). A defender strategy is one
defense or a pipeline, with one config per stage. Both are frozen and hashable, so the double
oracle can tell a new strategy from one it already has.

Trial parameters are named ``<family>.<field>`` for attack and defense fields and
``train.<field>`` for the recipe; when the attacker may pick among several families, the
categorical ``family`` chooses, and only the chosen family's fields are suggested
(a define-by-run space, which Optuna and Ray Tune's ``OptunaSearch`` both accept).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from arena.cache import ArtifactCache, content_key
from arena.params import config_to_dict
from arena.train import TrainConfig
from strategies import ATTACKS, attack_class, defense_class
from strategies.attacks import Attack, AttackConfig
from strategies.defenses import Defense, DefenseConfig, build_defense, parse_defenses
from strategies.registry import UnknownStrategy
from studies.spaces import config_from_params, config_params, config_space

TRAIN = "train."


class _Identified:
    """A strategy's content key (the hash of :meth:`describe`) and its short display label."""

    side: ClassVar[str]

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def key(self) -> str:
        return content_key(self.side, self.describe())

    @property
    def label(self) -> str:
        return f"{self.describe()['family']}#{self.key[:6]}"


@dataclass(frozen=True)
class AttackerStrategy(_Identified):
    side: ClassVar[str] = "attacker"
    family: str
    attack: AttackConfig
    recipe: TrainConfig

    def describe(self) -> dict[str, Any]:
        """Everything that defines the strategy, JSON-ready (also its cache identity)."""
        return {
            "family": self.family,
            "attack": config_to_dict(self.attack),
            "train": config_to_dict(self.recipe),
        }

    def build(
        self,
        *,
        image_shape: tuple[int, int, int],
        num_classes: int,
        cache: ArtifactCache | None = None,
    ) -> Attack:
        return attack_class(self.family)(
            self.attack, image_shape=image_shape, num_classes=num_classes, cache=cache
        )


@dataclass(frozen=True)
class DefenderStrategy(_Identified):
    side: ClassVar[str] = "defender"
    stages: tuple[tuple[str, DefenseConfig], ...]

    @property
    def family(self) -> str:
        return "+".join(name for name, _ in self.stages)

    def describe(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "stages": [{"name": n, "config": config_to_dict(c)} for n, c in self.stages],
        }

    def build(self, *, seed: int, cache: ArtifactCache | None = None) -> Defense:
        return build_defense(
            [n for n, _ in self.stages], [c for _, c in self.stages], seed=seed, cache=cache
        )


def suggest(trial: Any, name: str, dist: BaseDistribution) -> Any:
    """``trial.suggest_*`` for an Optuna distribution (public API, so Ray Tune's define-by-run
    captor records it)."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"no suggest for {type(dist).__name__}")


def parse_attackers(spec: str) -> list[str]:
    """``"all"``, one family or a comma-separated list, checked against the registry."""
    if spec == "all":
        return sorted(ATTACKS)
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise UnknownStrategy(f"no attack named; known attacks: all, {', '.join(sorted(ATTACKS))}")
    for name in names:
        attack_class(name)
    return names


class AttackerSpace:
    """What the attacker's studies search: one or several attack families plus the recipe."""

    side: ClassVar[str] = "attacker"
    direction: ClassVar[Literal["maximize", "minimize"]] = "maximize"

    def __init__(self, families: Sequence[str], *, num_classes: int) -> None:
        self.families = list(families)
        self.num_classes = num_classes

    def defaults(self) -> list[AttackerStrategy]:
        """Each family's default config with the default recipe: the loop's first strategies."""
        return [
            AttackerStrategy(f, attack_class(f).config_cls(), TrainConfig()) for f in self.families
        ]

    def define(self, trial: Any) -> None:
        family = self.families[0]
        if len(self.families) > 1:
            family = trial.suggest_categorical("family", self.families)
        cls = attack_class(family).config_cls
        for name, dist in config_space(
            cls, num_classes=self.num_classes, prefix=f"{family}."
        ).items():
            suggest(trial, name, dist)
        for name, dist in config_space(
            TrainConfig, num_classes=self.num_classes, prefix=TRAIN
        ).items():
            suggest(trial, name, dist)

    def anchors(self, own: Sequence[AttackerStrategy]) -> list[dict[str, Any]]:
        """Partial parameters for half of each study's new trials: every distinct training
        recipe the attacker already plays. Most random recipes give BadNets the user rejects,
        so a short search spends half its trials on triggers and poisoning over recipes that
        work, and the other half on everything."""
        recipes = [config_params(s.recipe, prefix=TRAIN) for s in own]
        return [r for i, r in enumerate(recipes) if r not in recipes[:i]]

    def decode(self, params: dict[str, Any]) -> AttackerStrategy:
        family = params.get("family", self.families[0])
        cls = attack_class(family).config_cls
        return AttackerStrategy(
            family,
            config_from_params(cls, params, prefix=f"{family}."),
            config_from_params(TrainConfig, params, prefix=TRAIN),
        )

    def encode(self, strategy: AttackerStrategy) -> dict[str, Any]:
        params = {
            **config_params(strategy.attack, prefix=f"{strategy.family}."),
            **config_params(strategy.recipe, prefix=TRAIN),
        }
        if len(self.families) > 1:
            params["family"] = strategy.family
        return params


class DefenderSpace:
    """What the defender's studies search: the hyper-parameters of each pipeline stage."""

    side: ClassVar[str] = "defender"
    direction: ClassVar[Literal["maximize", "minimize"]] = "minimize"

    def __init__(self, spec: str, *, num_classes: int) -> None:
        self.names = parse_defenses(spec)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"defense pipeline {spec!r} names a defense twice")
        self.num_classes = num_classes

    def defaults(self) -> list[DefenderStrategy]:
        return [DefenderStrategy(tuple((n, defense_class(n).config_cls()) for n in self.names))]

    def define(self, trial: Any) -> None:
        for n in self.names:
            cls = defense_class(n).config_cls
            for name, dist in config_space(
                cls, num_classes=self.num_classes, prefix=f"{n}."
            ).items():
                suggest(trial, name, dist)

    def anchors(self, own: Sequence[DefenderStrategy]) -> list[dict[str, Any]]:
        """None: every defender configuration is deployable, so its search stays free."""
        return []

    def decode(self, params: dict[str, Any]) -> DefenderStrategy:
        return DefenderStrategy(
            tuple(
                (n, config_from_params(defense_class(n).config_cls, params, prefix=f"{n}."))
                for n in self.names
            )
        )

    def encode(self, strategy: DefenderStrategy) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for n, config in strategy.stages:
            params.update(config_params(config, prefix=f"{n}."))
        return params
