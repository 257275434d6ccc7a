"""Config fields that declare their own search range.

A strategy's config is a frozen dataclass; each searchable field is made with :func:`param`,
which records its range in the field's metadata. ``studies.spaces`` turns a config class into an
Optuna search space and a trial's parameters back into a config, so a strategy never writes
search code of its own::

    @dataclass(frozen=True)
    class BadNetsConfig(AttackConfig):
        size: float = param(0.19, low=0.1, high=0.35)
        location: str = param("bottom-right", choices=CORNERS)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

LAST_CLASS = -1
"""A range bound that stands for the dataset's last class index (``num_classes - 1``)."""


@dataclass(frozen=True)
class Range:
    """The search range of one field: numeric ``[low, high]`` or a tuple of ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        numeric = self.low is not None and self.high is not None
        if numeric == (self.choices is not None):
            raise ValueError("a Range is either numeric (low and high) or categorical (choices)")
        if self.choices is not None and len(self.choices) == 0:
            raise ValueError("a categorical Range needs at least one choice")

    def bounds(self, num_classes: int) -> tuple[float, float]:
        """Numeric bounds with :data:`LAST_CLASS` resolved for a dataset of ``num_classes``."""
        assert self.low is not None and self.high is not None
        high = num_classes - 1 if self.high == LAST_CLASS else self.high
        return self.low, high

    def contains(self, value: Any, num_classes: int) -> bool:
        if self.choices is not None:
            return value in self.choices
        low, high = self.bounds(num_classes)
        return bool(low <= value <= high)


def param(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    log: bool = False,
    step: float | None = None,
    choices: tuple[Any, ...] | None = None,
    help: str = "",
) -> Any:
    """A dataclass field whose metadata holds its search :class:`Range` and a help line."""
    rng = Range(low=low, high=high, log=log, step=step, choices=choices)
    if choices is not None and default not in choices:
        raise ValueError(f"default {default!r} is not among the choices {choices}")
    return dataclasses.field(default=default, metadata={"range": rng, "help": help})


def fixed(default: Any, *, help: str = "") -> Any:
    """A config field that is not searched (a constant of the strategy)."""
    return dataclasses.field(default=default, metadata={"help": help})


def searchable_fields(config_cls: type) -> list[tuple[dataclasses.Field[Any], Range]]:
    """The fields of ``config_cls`` that carry a search range, in declaration order."""
    return [
        (f, f.metadata["range"]) for f in dataclasses.fields(config_cls) if "range" in f.metadata
    ]


def config_to_dict(config: Any) -> dict[str, Any]:
    """A config as a plain JSON-ready dict (tuples become lists)."""
    return json_ready(dataclasses.asdict(config))


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def config_from_dict(config_cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a config from :func:`config_to_dict`'s output; unknown keys are an error."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"{config_cls.__name__} has no field(s) {', '.join(unknown)}; "
            f"its fields are {', '.join(sorted(names))}"
        )
    return config_cls(**values)
