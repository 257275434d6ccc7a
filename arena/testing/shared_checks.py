"""Checks that the attack and defense suites share: of the strategy class (its name, version,
summary and config class) and of its config (its fields, its search space, its choices).

Each takes the :class:`~arena.testing.contract.Probe` of the check that calls it and fails it
through :meth:`~arena.testing.contract.Probe.expect`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import optuna

from arena.core.config import searchable_fields
from arena.testing.contract import Probe
from studies.spaces import config_from_params, config_params, config_space

FORBIDDEN_IN_NAMES = (",", "+", "=")
"""Characters a strategy's name may not hold: the CLI splits lists of names on ``,``, defense
pipelines on ``+``, and config overrides on ``=``."""
PREFIX = "contract."
"""The prefix of the sampled trials' parameter names."""


def expect_class_attributes(probe: Probe, cls: Any, base: type, config_base: type) -> None:
    """``cls`` subclasses ``base``, implements its abstract methods, and declares a usable
    ``name``, ``version``, ``summary`` and ``config_cls`` (a frozen dataclass subclassing
    ``config_base`` that builds with no arguments)."""
    probe.expect(
        isinstance(cls, type) and issubclass(cls, base),
        f"a subclass of {base.__module__}.{base.__qualname__}",
        repr(cls),
    )
    abstract = sorted(getattr(cls, "__abstractmethods__", ()))
    probe.expect(
        not inspect.isabstract(cls),
        "every abstract method implemented",
        f"still abstract: {', '.join(abstract)}",
    )
    name = getattr(cls, "name", None)
    probe.expect(
        isinstance(name, str) and name != "", "a class attribute `name` (a string)", repr(name)
    )
    assert isinstance(name, str)
    bad = any(c in name for c in FORBIDDEN_IN_NAMES) or any(c.isspace() for c in name)
    probe.expect(
        not bad and name != "all",
        "a name without spaces, ',', '+' or '=' that is not 'all' (the CLI's word for every one)",
        f"{name!r}",
    )
    version = getattr(cls, "version", None)
    probe.expect(
        isinstance(version, int) and not isinstance(version, bool) and version >= 1,
        "a class attribute `version`, an integer of at least 1",
        repr(version),
    )
    summary = getattr(cls, "summary", None)
    probe.expect(
        isinstance(summary, str) and summary.strip() != "",
        "a class attribute `summary` (the line `arena list` shows)",
        repr(summary),
    )
    config_cls = getattr(cls, "config_cls", None)
    probe.expect(
        isinstance(config_cls, type) and issubclass(config_cls, config_base),
        f"`config_cls`, a subclass of {config_base.__qualname__}",
        repr(config_cls),
    )
    assert isinstance(config_cls, type)
    params = getattr(config_cls, "__dataclass_params__", None)
    probe.expect(
        dataclasses.is_dataclass(config_cls) and params is not None and params.frozen,
        "`config_cls` a frozen dataclass",
        f"{config_cls.__qualname__} is not frozen",
    )
    try:
        config_cls()
    except Exception as exc:
        probe.expect(
            False,
            f"{config_cls.__qualname__}() to build from its fields' defaults",
            f"{type(exc).__name__}: {exc}",
        )


def expect_registry_entry(probe: Probe, cls: Any, table: dict[str, Any]) -> None:
    """``cls``'s name is free in the registry, or registered to ``cls`` itself."""
    holder = table.get(cls.name)
    where = f"{getattr(holder, '__module__', '?')}.{getattr(holder, '__qualname__', holder)}"
    probe.expect(
        holder is None or holder is cls,
        f"the name {cls.name!r} free, or registered to this class",
        f"it is registered to {where}",
    )


def expect_config_fields(probe: Probe, config_cls: type, num_classes: int) -> None:
    """Every field of ``config_cls`` is declared with ``param`` (searched) or ``fixed`` (a
    constant), every numeric search range holds a value, and every searched field's default
    lies in its search range."""
    ranges = {f.name: rng for f, rng in searchable_fields(config_cls)}
    for f in dataclasses.fields(config_cls):
        probe.expect(
            f.name in ranges or "help" in f.metadata,
            f"field {f.name!r} declared with arena.core.config.param(...) or fixed(...)",
            "a plain dataclass field",
        )
        rng = ranges.get(f.name)
        if rng is not None and rng.choices is None:
            low, high = rng.bounds(num_classes)
            probe.expect(
                not rng.empty(num_classes),
                f"the search range of {f.name!r} to hold a value",
                f"low {low} > high {high}",
            )
        if f.name in ranges:
            probe.expect(
                ranges[f.name].contains(f.default, num_classes=num_classes),
                f"the default of {f.name!r} inside its search range {ranges[f.name]}",
                repr(f.default),
            )


def sample_configs(
    config_cls: type, num_classes: int, count: int, *, seed: int, base: Any
) -> list[tuple[dict[str, Any], Any]]:
    """``count`` configs drawn at random from ``config_cls``'s search space (Optuna's random
    sampler, seeded), each checked to round-trip through the trial's parameters; fields the
    space does not search keep ``base``'s values."""
    space = config_space(config_cls, num_classes=num_classes, prefix=PREFIX)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        params = [study.ask(fixed_distributions=space).params for _ in range(count)]
    finally:
        optuna.logging.set_verbosity(verbosity)
    return [(p, config_from_params(config_cls, p, prefix=PREFIX, base=base)) for p in params]


def expect_round_trips(
    probe: Probe, config_cls: type, num_classes: int, count: int, *, seed: int, base: Any
) -> list[Any]:
    """Sample ``count`` configs (:func:`sample_configs`); each must be a ``config_cls`` whose
    searchable fields give back the trial's parameters, and the samples must differ when the
    space has more than one point. Returns the configs."""
    configs = []
    for params, config in sample_configs(config_cls, num_classes, count, seed=seed, base=base):
        probe.config = config
        probe.expect(
            type(config) is config_cls,
            f"config_from_params to build a {config_cls.__qualname__}",
            type(config).__qualname__,
        )
        back = config_params(config, prefix=PREFIX)
        probe.expect(
            back == params,
            f"the config to hold the sampled parameters {params}",
            f"{back}",
        )
        configs.append(config)
    probe.config = None
    space = config_space(config_cls, num_classes=num_classes)
    if any(not d.single() for d in space.values()):
        probe.expect(
            len(set(configs)) > 1,
            f"{count} samples of the search space to differ",
            "one config every time",
        )
    return configs


def expect_choices_refused(
    probe: Probe, config_cls: type, base: Any, build: Callable[[Any], object]
) -> None:
    """For each field that declares ``choices``, a config holding another value is refused
    with a ``ValueError`` that names the field and the value, when built or when the strategy
    is built from it."""
    for f, rng in searchable_fields(config_cls):
        if rng.choices is None:
            continue
        wrong = "sideways"
        try:
            probe.config = dataclasses.replace(base, **{f.name: wrong})
            build(probe.config)
        except ValueError as exc:
            probe.expect(
                f"{f.name}={wrong!r}" in str(exc),
                f"the ValueError to name {f.name}={wrong!r}",
                f"{exc}",
            )
        else:
            probe.expect(
                False,
                f"{f.name}={wrong!r} (not one of its choices {rng.choices}) refused",
                "the strategy built",
            )
    probe.config = None
