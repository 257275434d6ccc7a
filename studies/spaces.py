"""Search spaces made from strategy configs.

Each config field declared with :func:`arena.params.param` becomes one Optuna distribution;
a trial's parameters become a config again. Parameter names carry a prefix (``attack.size``,
``train.lr``) so that one study can search an attack, its training recipe and, later, a family
choice together without clashes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from arena.params import Range, searchable_fields


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
