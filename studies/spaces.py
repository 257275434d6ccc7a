"""What each side's studies search: spaces made from strategy configs.

Each config field declared with :func:`arena.core.config.param` becomes one Optuna distribution;
a trial's parameters become a config again. Parameter names carry a prefix (``attack.size``,
``train.lr``) so that one study can search an attack, its training recipe and, later, a family
choice together without clashes.

:class:`AttackerSpace` and :class:`DefenderSpace` are the two sides' define-by-run spaces
(Optuna and Ray Tune's ``OptunaSearch`` both accept them): a trial's parameters are named
``<family>.<field>`` for attack and defense fields and ``train.<field>`` for the recipe; when the
attacker may pick among several families, the categorical ``family`` chooses, and only the
chosen family's fields are suggested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from arena.core.config import Range, searchable_fields
from arena.core.train import TrainConfig
from strategies import attack_class, defense_class
from strategies.defenses import parse_defenses
from strategies.players import AttackerStrategy, DefenderStrategy

TRAIN = "train."
MAX_DEFAULT_CHOICES = 12
"""Most defender choices whose defaults all start the double oracle (see
:meth:`DefenderSpace.defaults`)."""


def _distribution(field_type: Any, rng: Range, num_classes: int) -> BaseDistribution:
    if rng.choices is not None:
        return CategoricalDistribution(list(rng.choices))
    low, high = rng.bounds(num_classes)
    if field_type in (int, "int"):
        step = int(rng.step or 1)
        return IntDistribution(int(low), int(high), log=rng.log, step=1 if rng.log else step)
    return FloatDistribution(float(low), float(high), log=rng.log, step=rng.step)


def config_space(
    config_cls: type, *, num_classes: int, prefix: str = ""
) -> dict[str, BaseDistribution]:
    """``{prefix + field name: distribution}`` for every searchable field of ``config_cls``.

    Optuna distributions are what ``Trial.suggest_*``, ``Study.enqueue_trial`` and
    ``optuna.integration``'s Ray Tune searcher all accept.
    """
    hints = _field_types(config_cls)
    return {
        prefix + f.name: _distribution(hints[f.name], rng, num_classes)
        for f, rng in searchable_fields(config_cls)
    }


def config_from_params(
    config_cls: type, params: dict[str, Any], *, prefix: str = "", base: Any = None
) -> Any:
    """The config a trial's ``params`` describe; fields it does not name keep ``base``'s values
    (or the defaults). Values are cast to each field's declared type."""
    hints = _field_types(config_cls)
    start = base if base is not None else config_cls()
    updates: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        key = prefix + f.name
        if key in params:
            value = params[key]
            kind = hints[f.name]
            if kind in (int, "int") and not isinstance(value, bool):
                value = int(value)
            elif kind in (float, "float"):
                value = float(value)
            updates[f.name] = value
    return dataclasses.replace(start, **updates)


def config_params(config: Any, *, prefix: str = "") -> dict[str, Any]:
    """The searchable part of ``config`` as trial parameters (for ``enqueue_trial``)."""
    return {prefix + f.name: getattr(config, f.name) for f, _ in searchable_fields(type(config))}


def _field_types(config_cls: type) -> dict[str, Any]:
    import typing

    hints = typing.get_type_hints(config_cls)
    return {f.name: hints.get(f.name, f.type) for f in dataclasses.fields(config_cls)}


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
    """What the defender's studies search: the hyper-parameters of each pipeline stage and, when
    the defender may choose among several defenses or pipelines, the categorical ``defense``
    that chooses (only the chosen one's fields are suggested)."""

    side: ClassVar[str] = "defender"
    direction: ClassVar[Literal["maximize", "minimize"]] = "minimize"

    def __init__(self, choices: str | Sequence[str], *, num_classes: int) -> None:
        given = [choices] if isinstance(choices, str) else list(choices)
        if not given:
            raise ValueError("the defender has no defense to choose from")
        # each choice as its strategies' family reads it ("strip+bdmae")
        self.stages = {"+".join(parse_defenses(spec)): parse_defenses(spec) for spec in given}
        self.choices = list(self.stages)
        for spec, names in self.stages.items():
            if len(set(names)) != len(names):
                raise ValueError(f"defense pipeline {spec!r} names a defense twice")
        self.num_classes = num_classes

    @property
    def names(self) -> list[str]:
        """The stages of the first choice (the only one, for a defender with no choice)."""
        return self.stages[self.choices[0]]

    def defaults(self) -> list[DefenderStrategy]:
        """The loop's first strategies: each choice's default config; with more than
        :data:`MAX_DEFAULT_CHOICES` choices (``--defender all``), the single defenses' only
        (the pipelines are the studies' to find)."""
        specs = self.choices
        if len(specs) > MAX_DEFAULT_CHOICES:
            specs = [s for s in specs if "+" not in s] or specs[:MAX_DEFAULT_CHOICES]
        return [
            DefenderStrategy(tuple((n, defense_class(n).config_cls()) for n in self.stages[s]))
            for s in specs
        ]

    def define(self, trial: Any) -> None:
        spec = self.choices[0]
        if len(self.choices) > 1:
            spec = trial.suggest_categorical("defense", self.choices)
        for n in self.stages[spec]:
            cls = defense_class(n).config_cls
            for name, dist in config_space(
                cls, num_classes=self.num_classes, prefix=f"{n}."
            ).items():
                suggest(trial, name, dist)

    def anchors(self, own: Sequence[DefenderStrategy]) -> list[dict[str, Any]]:
        """None: every defender configuration is deployable, so its search stays free."""
        return []

    def decode(self, params: dict[str, Any]) -> DefenderStrategy:
        spec = params.get("defense", self.choices[0])
        return DefenderStrategy(
            tuple(
                (n, config_from_params(defense_class(n).config_cls, params, prefix=f"{n}."))
                for n in self.stages[spec]
            )
        )

    def encode(self, strategy: DefenderStrategy) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for n, config in strategy.stages:
            params.update(config_params(config, prefix=f"{n}."))
        if len(self.choices) > 1:
            params["defense"] = strategy.family
        return params
