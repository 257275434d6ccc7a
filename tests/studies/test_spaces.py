"""Every config's search space: samples land in their declared ranges with their declared
types, and configs round-trip through trial parameters."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from arena.core.config import LAST_CLASS, Range, searchable_fields
from arena.core.train import TrainConfig
from strategies import ATTACKS, DEFENSES
from studies.spaces import config_from_params, config_params, config_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

CONFIGS: dict[str, type] = {
    "train": TrainConfig,
    **{f"attack:{name}": cls.config_cls for name, cls in sorted(ATTACKS.items())},
    **{f"defense:{name}": cls.config_cls for name, cls in sorted(DEFENSES.items())},
}
CLASS_COUNTS = (2, 10, 43)
SAMPLES = 60


def _types(config_cls: type) -> dict[str, Any]:
    return typing.get_type_hints(config_cls)


def _has_type(value: Any, kind: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, float)
    if kind is str:
        return isinstance(value, str)
    raise AssertionError(f"searchable field of unexpected type {kind!r}")


def _sample(config_cls: type, num_classes: int, prefix: str = "") -> list[dict[str, Any]]:
    space = config_space(config_cls, num_classes=num_classes, prefix=prefix)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    return [study.ask(fixed_distributions=space).params for _ in range(SAMPLES)]


def test_registries_are_covered() -> None:
    assert len(ATTACKS) >= 1 and len(DEFENSES) >= 1
    assert "attack:badnets" in CONFIGS and "defense:none" in CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_space_has_a_distribution_per_searchable_field(name: str) -> None:
    cls = CONFIGS[name]
    types = _types(cls)
    space = config_space(cls, num_classes=10, prefix="p.")
    fields = searchable_fields(cls)
    assert list(space) == [f"p.{f.name}" for f, _ in fields]
    for f, rng in fields:
        dist = space[f"p.{f.name}"]
        if rng.choices is not None:
            assert isinstance(dist, CategoricalDistribution)
            assert tuple(dist.choices) == tuple(rng.choices)
        elif types[f.name] is int:
            assert isinstance(dist, IntDistribution)
            assert dist.log == rng.log
        else:
            assert isinstance(dist, FloatDistribution)
            assert (dist.low, dist.log) == (rng.low, rng.log)


@pytest.mark.parametrize("num_classes", CLASS_COUNTS)
@pytest.mark.parametrize("name", CONFIGS)
def test_samples_lie_in_range_with_declared_type(name: str, num_classes: int) -> None:
    cls = CONFIGS[name]
    types = _types(cls)
    fields = searchable_fields(cls)
    seen: dict[str, set[Any]] = {f.name: set() for f, _ in fields}
    for params in _sample(cls, num_classes, prefix="x."):
        config = config_from_params(cls, params, prefix="x.")
        assert isinstance(config, cls)
        for f, rng in fields:
            value = getattr(config, f.name)
            assert _has_type(value, types[f.name]), (f.name, value, types[f.name])
            assert rng.contains(value, num_classes), (f.name, value, rng)
            seen[f.name].add(value)
        assert config_params(config, prefix="x.") == params
    for f, rng in fields:  # the sampler really explores each field that has room
        if rng.choices is not None:
            assert len(seen[f.name]) >= min(2, len(rng.choices)), f.name
        elif rng.bounds(num_classes)[1] > rng.bounds(num_classes)[0]:
            assert len(seen[f.name]) >= 2, f.name


@pytest.mark.parametrize("name", CONFIGS)
def test_defaults_round_trip_and_lie_in_range(name: str) -> None:
    cls = CONFIGS[name]
    default = cls()
    params = config_params(default, prefix="a.")
    assert config_from_params(cls, params, prefix="a.") == default
    assert config_from_params(cls, {}) == default
    for f, rng in searchable_fields(cls):
        assert rng.contains(getattr(default, f.name), 10), f.name


@pytest.mark.parametrize("name", CONFIGS)
def test_unnamed_fields_keep_the_base(name: str) -> None:
    cls = CONFIGS[name]
    fields = searchable_fields(cls)
    if not fields:
        assert config_params(cls()) == {}
        return
    params = _sample(cls, 10)[0]
    first, _ = fields[0]
    base = config_from_params(cls, params)
    partial = config_from_params(cls, {first.name: params[first.name]}, base=base)
    assert partial == base
    other = {k: v for k, v in params.items() if k != first.name}
    assert getattr(config_from_params(cls, other), first.name) == first.default


def test_values_are_cast_to_the_field_type() -> None:
    config = config_from_params(TrainConfig, {"epochs": 7.0, "lr": 1, "batch_size": 32})
    assert config.epochs == 7 and type(config.epochs) is int
    assert config.lr == 1.0 and type(config.lr) is float


@pytest.mark.parametrize("num_classes", CLASS_COUNTS)
def test_last_class_resolves(num_classes: int) -> None:
    rng = Range(low=0, high=LAST_CLASS)
    assert rng.bounds(num_classes) == (0, num_classes - 1)
    assert rng.contains(num_classes - 1, num_classes)
    assert not rng.contains(num_classes, num_classes)
    found = 0
    for cls in CONFIGS.values():
        space = config_space(cls, num_classes=num_classes)
        for f, r in searchable_fields(cls):
            if r.choices is None and r.high == LAST_CLASS:
                dist = space[f.name]
                assert isinstance(dist, IntDistribution)
                assert (dist.low, dist.high) == (r.low, num_classes - 1)
                found += 1
    assert found >= len(ATTACKS)  # every attack's target class


def test_range_rejects_half_declared() -> None:
    with pytest.raises(ValueError, match="either numeric"):
        Range(low=0.0)
    with pytest.raises(ValueError, match="either numeric"):
        Range(low=0.0, high=1.0, choices=("a",))
    with pytest.raises(ValueError, match="at least one choice"):
        Range(choices=())


def test_configs_are_frozen_dataclasses() -> None:
    for name, cls in CONFIGS.items():
        assert dataclasses.is_dataclass(cls), name
        with pytest.raises(dataclasses.FrozenInstanceError):
            cls().__setattr__("x", 1)
