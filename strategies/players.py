"""The players' strategies: what the double oracle mixes and a payoff cell is played between.

An attacker strategy is an attack family, its config and the BadNet's training recipe (the
recipe belongs to the attacker: pitfall 1 of Veldanda & Garg). A defender strategy is one
defense or a pipeline, with one config per stage. Both are frozen, hashable plain data, so the
double oracle can tell a new strategy from one it already has; each has a content key (the hash
of :meth:`describe`, also its cache identity) and a short label for reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from arena.core.cache import ArtifactCache, content_key
from arena.core.config import config_from_dict, config_to_dict
from arena.core.train import TrainConfig
from strategies import ATTACKS, DEFENSES, UnknownStrategy, attack_class, defense_class
from strategies.attacks import Attack, AttackConfig
from strategies.defenses import (
    Defense,
    DefenseConfig,
    Pipeline,
    build_defense,
    parse_defenses,
)


class StaleStrategy(ValueError):
    """A recorded strategy whose code has changed version since it was played."""


def _check_version(what: str, recorded: Any, current: int) -> None:
    if recorded is not None and recorded != current:
        raise StaleStrategy(
            f"{what} was played at version {recorded} and is at version {current} now, so its "
            "cells would not replay; run the duel again with this code"
        )


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

    def __post_init__(self) -> None:
        # a recipe of no epochs is valid for a defense's fine-tuning (it changes nothing), but a
        # BadNet trained for no epochs is no network at all
        if self.recipe.epochs < 1:
            raise ValueError(
                f"the BadNet's recipe has epochs={self.recipe.epochs}, which trains nothing; "
                "give -T epochs=1 or more"
            )

    @classmethod
    def of(
        cls, family: str, attack: AttackConfig | None = None, recipe: TrainConfig | None = None
    ) -> AttackerStrategy:
        """The family by name, with its default config and the default recipe unless given."""
        return cls(family, attack or attack_class(family).config_cls(), recipe or TrainConfig())

    def describe(self) -> dict[str, Any]:
        """Everything that defines the strategy, JSON-ready (also its cache identity)."""
        return {
            "family": self.family,
            "version": attack_class(self.family).version,
            "attack": config_to_dict(self.attack),
            "train": config_to_dict(self.recipe),
        }

    @classmethod
    def from_description(cls, described: dict[str, Any]) -> AttackerStrategy:
        """The strategy :meth:`describe` (or a ``duel.json`` mix entry) wrote; refused if the
        attack's code has another version now (it would not be the strategy that was played)."""
        family = described["family"]
        _check_version(f"attack {family}", described.get("version"), attack_class(family).version)
        return cls(
            family,
            config_from_dict(attack_class(family).config_cls, described["attack"]),
            config_from_dict(TrainConfig, described["train"]),
        )

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

    @classmethod
    def of(
        cls, spec: str, configs: Sequence[DefenseConfig | None] | None = None
    ) -> DefenderStrategy:
        """A defense or a pipeline by name (``strip+bdmae``), with one config per stage (each
        the stage's default where ``None`` or not given)."""
        names = parse_defenses(spec)
        given = list(configs or [None] * len(names))
        if len(given) != len(names):
            raise ValueError(f"{spec!r} has {len(names)} stage(s) but {len(given)} config(s)")
        return cls(
            tuple(
                (n, c if c is not None else defense_class(n).config_cls())
                for n, c in zip(names, given, strict=True)
            )
        )

    @property
    def family(self) -> str:
        return "+".join(name for name, _ in self.stages)

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "family": self.family,
            "stages": [
                {"name": n, "version": defense_class(n).version, "config": config_to_dict(c)}
                for n, c in self.stages
            ],
        }
        if len(self.stages) > 1:
            described["pipeline_version"] = Pipeline.version
        return described

    @classmethod
    def from_description(cls, described: dict[str, Any]) -> DefenderStrategy:
        """The strategy :meth:`describe` (or a ``duel.json`` mix entry) wrote; refused if a
        stage's code (or the pipeline's) has another version now."""
        stages = []
        for stage in described["stages"]:
            name = stage["name"]
            _check_version(f"defense {name}", stage.get("version"), defense_class(name).version)
            stages.append((name, config_from_dict(defense_class(name).config_cls, stage["config"])))
        if len(stages) > 1:
            _check_version("the pipeline", described.get("pipeline_version"), Pipeline.version)
        return cls(tuple(stages))

    def build(self, *, seed: int, cache: ArtifactCache | None = None) -> Defense:
        return build_defense(
            [n for n, _ in self.stages], [c for _, c in self.stages], seed=seed, cache=cache
        )


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


def all_defenders() -> list[str]:
    """Every registered defense but ``none``, then every valid two-stage pipeline of them (in
    the order filters, purifiers, detectors: ``strategies/defenses/pipeline.py``). Two
    detectors serve the same verdict in either order, so only one order of such a pair is
    there; two purifiers in the other order are another system (each is fitted on the model
    the one before serves)."""
    singles = sorted(n for n in DEFENSES if n != "none")
    pairs = []
    for first in singles:
        for second in singles:
            if first == second:
                continue
            both_detect = defense_class(first).kind == defense_class(second).kind == "detector"
            if both_detect and first > second:
                continue
            try:
                parse_defenses(f"{first}+{second}")
            except ValueError:  # a pair in the wrong order, or one that makes no sense
                continue
            pairs.append(f"{first}+{second}")
    return singles + pairs


def parse_defenders(spec: str) -> list[str]:
    """``"all"`` (:func:`all_defenders`), one defense or pipeline, or a comma-separated list of
    them (``strip,abs,strip+bdmae``), each checked against the registry and the pipeline rules:
    the defenses the defender's study chooses among."""
    if spec == "all":
        return all_defenders()
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if not parts:
        known = ", ".join(sorted(DEFENSES))
        raise UnknownStrategy(f"no defense named; known defenses: all, {known}")
    items = ["+".join(parse_defenses(part)) for part in parts]  # "strip + bdmae" too
    for item in items:
        if items.count(item) > 1:
            raise ValueError(f"--defender lists {item} twice; name each defense once")
    return items
