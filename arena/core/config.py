"""Config fields that declare their own search range.

A strategy's config is a frozen dataclass; each searchable field is made with :func:`param`,
which records its range in the field's metadata. ``studies.spaces`` turns a config class into an
Optuna search space and a trial's parameters back into a config, so a strategy never writes
search code of its own::

    @dataclass(frozen=True)
    class BadNetsConfig(AttackConfig):
        size: float = param(0.19, low=0.1, high=0.35, valid=SHARE)
        location: str = param("bottom-right", choices=CORNERS)

A field's search range and its valid domain are different things: the range bounds what the
studies search, the domain (:class:`Valid`) what the strategy can run at all. A config that
subclasses :class:`Validated` checks every field against its domain once, when it is built
(by the CLI, the Python API or a model file's header alike): a value outside the domain is a
one-line ``ValueError``. A valid value that a user sets outside the search range is accepted
with one logged warning (:func:`warn_outside_search`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

log = logging.getLogger(__name__)

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

    def empty(self, num_classes: int | None = None) -> bool:
        """Whether a numeric range holds no value (``low > high``). Without ``num_classes``, a
        range up to :data:`LAST_CLASS` is taken to hold one (any dataset has a class 0)."""
        if self.choices is not None:  # refused when built if it has none
            return False
        if num_classes is None and self.high == LAST_CLASS:
            return False
        low, high = self.bounds(num_classes) if num_classes is not None else (self.low, self.high)
        assert low is not None and high is not None
        return low > high

    def contains(self, value: Any, num_classes: int) -> bool:
        if self.choices is not None:
            return value in self.choices
        low, high = self.bounds(num_classes)
        return bool(low <= value <= high)


@dataclass(frozen=True)
class Valid:
    """The valid domain of a numeric field: an interval from ``low`` to ``high`` (``None``: no
    bound), each end closed unless ``low_open`` or ``high_open``. NaN and infinities are never
    valid; an ``int`` field also takes integers only (a ``bool`` is not one)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __post_init__(self) -> None:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"a Valid domain needs low <= high (got {self.low}, {self.high})")

    def contains(self, value: float) -> bool:
        """Whether a finite ``value`` lies in the interval (NaN and infinities never do)."""
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        low = "-inf" if self.low is None else f"{self.low}"
        high = "inf" if self.high is None else f"{self.high}"
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{low}, {high}{right}"


UNIT = Valid(0, 1)
"""A share or a ratio that may be 0 or 1: ``[0, 1]``."""
SHARE = Valid(0, 1, low_open=True)
"""A share that must be more than 0: ``(0, 1]``."""
POSITIVE = Valid(0, low_open=True)
"""A finite number above 0 (a learning rate, a scale): ``(0, inf)``."""
NON_NEGATIVE = Valid(0)
"""A finite number or a count that may be 0: ``[0, inf)``."""
AT_LEAST_ONE = Valid(1)
"""A count that must be at least 1: ``[1, inf)``."""
CLASS_INDEX = Valid(0)
"""A class index. Its upper end, ``num_classes - 1``, is known only with the dataset, so the
strategy checks it there; the config checks that it is an integer of at least 0."""
SEED = Valid(0, 2**32 - 1)
"""A seed that every generator takes (torch's and NumPy's): ``[0, 2**32 - 1]``."""


def param(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    log: bool = False,
    step: float | None = None,
    choices: tuple[Any, ...] | None = None,
    valid: Valid | None = None,
    help: str = "",
) -> Any:
    """A dataclass field whose metadata holds its search :class:`Range`, its valid domain
    (``valid``, for numeric fields) and a help line. The default and both ends of the range
    must lie in the domain."""
    rng = Range(low=low, high=high, log=log, step=step, choices=choices)
    if choices is not None and default not in choices:
        raise ValueError(f"default {default!r} is not among the choices {choices}")
    if valid is not None:
        ends = [default] if low is None else [default, low]
        ends += [] if high is None or high == LAST_CLASS else [high]
        ends += [c for c in choices or () if _is_number(c)]
        outside = [end for end in ends if not valid.contains(end)]
        if outside:
            raise ValueError(f"{outside[0]!r} (a default or search bound) is not in {valid}")
    metadata: dict[str, Any] = {"range": rng, "help": help}
    if valid is not None:
        metadata["valid"] = valid
    return dataclasses.field(default=default, metadata=metadata)


def fixed(default: Any, *, valid: Valid | None = None, help: str = "") -> Any:
    """A config field that is not searched (a constant of the strategy), with its valid domain
    (``valid``, for numeric fields)."""
    if valid is not None and not valid.contains(default):
        raise ValueError(f"default {default!r} is not in {valid}")
    metadata: dict[str, Any] = {"help": help}
    if valid is not None:
        metadata["valid"] = valid
    return dataclasses.field(default=default, metadata=metadata)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def in_domain(value: Any, valid: Valid, *, integer: bool = False) -> bool:
    """Whether ``value`` is a number (an integer if ``integer``; never a ``bool``) in ``valid``."""
    if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
        return False
    return valid.contains(value)


def check_option(name: str, value: Any, valid: Valid, *, integer: bool = False) -> None:
    """Raise a one-line ``ValueError`` naming option ``name`` (a CLI flag such as
    ``--delta-attack``), its value and its domain unless ``value`` is in ``valid``."""
    if not in_domain(value, valid, integer=integer):
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"{name} {value!r} is not {kind} in {valid}")


_warned: set[tuple[str, str, str]] = set()


class Validated:
    """A config that checks its fields once, when it is built (``__post_init__``).

    A field with a :class:`Valid` domain must hold a number of its declared type (``int`` or
    ``float``; a ``float`` field takes an ``int`` too) inside it, or the config raises a one-line
    ``ValueError`` naming the config, the field, the value and the domain. Fields that declare
    ``choices`` and no domain are left to the strategy bases (``strategies/choices.py``), unless
    ``strict_choices`` is set: then they must hold a choice.
    """

    strict_choices: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_config(self)


def check_config(config: Any) -> None:
    """Check every field of the dataclass instance ``config`` as :class:`Validated` says."""
    cls = type(config)
    owner = cls.__name__
    types = _field_types(cls)
    for f in dataclasses.fields(cls):
        value = getattr(config, f.name)
        valid: Valid | None = f.metadata.get("valid")
        rng: Range | None = f.metadata.get("range")
        if valid is not None:
            integral = types.get(f.name) is int
            kind = "an integer" if integral else "a finite number"
            if not in_domain(value, valid, integer=integral):
                hint = f.metadata.get("help", "")
                raise ValueError(
                    f"{owner}: {f.name}={value!r} is not {kind} in {valid}"
                    + (f" ({hint})" if hint else "")
                )
        elif (
            rng is not None
            and rng.choices is not None
            and getattr(cls, "strict_choices", False)
            and value not in rng.choices
        ):
            raise ValueError(
                f"{owner}: {f.name}={value!r} is not a choice; choose one of "
                + ", ".join(repr(c) for c in rng.choices)
            )


def warn_outside_search(config: Any, names: Iterable[str]) -> None:
    """Log one warning for each field of ``names`` that a user set (``-A``, ``-T``, ``-D``,
    or the Python API) to a valid value outside its search range: accepted, but not what the
    studies search. Once per config class, field and value per process; the configs that
    strategies build for themselves never warn."""
    cls = type(config)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in names:
        f = fields[name]
        value = getattr(config, name)
        rng: Range | None = f.metadata.get("range")
        if f.metadata.get("valid") is None or rng is None or _in_search_range(rng, value):
            continue
        key = (cls.__name__, name, repr(value))
        if key not in _warned:
            _warned.add(key)
            log.warning(
                "%s: %s=%r is outside the search range %s; using it",
                cls.__name__,
                name,
                value,
                _range_text(rng),
            )


def _in_search_range(rng: Range, value: Any) -> bool:
    """Whether ``value`` lies in ``rng``; a :data:`LAST_CLASS` upper bound is not checked."""
    if rng.choices is not None:
        return value in rng.choices
    assert rng.low is not None and rng.high is not None
    return bool(rng.low <= value and (rng.high == LAST_CLASS or value <= rng.high))


def _range_text(rng: Range) -> str:
    if rng.choices is not None:
        return "{" + ", ".join(repr(c) for c in rng.choices) + "}"
    high = "the last class" if rng.high == LAST_CLASS else f"{rng.high}"
    return f"[{rng.low}, {high}]"


_types: dict[type, dict[str, Any]] = {}


def _field_types(cls: type) -> dict[str, Any]:
    """The resolved type of each field of ``cls`` (annotations are strings under
    ``from __future__ import annotations``), read once per class."""
    if cls not in _types:
        _types[cls] = typing.get_type_hints(cls)
    return _types[cls]


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
