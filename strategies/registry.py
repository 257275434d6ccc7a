"""Registries of attacks and defenses by CLI name.

The CLI's choices, ``arena list`` and the shared test suites all read these two tables, so a
strategy exists for every part of Arena as soon as its module registers it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, TypeVar


class Named(Protocol):
    """A strategy class: it has a CLI name."""

    name: ClassVar[str]


T = TypeVar("T", bound=type[Named])

ATTACKS: dict[str, Any] = {}
DEFENSES: dict[str, Any] = {}


class UnknownStrategy(ValueError):
    """An attack or defense name that is not registered."""


def _register(table: dict[str, Any], kind: str) -> Any:
    def decorator(cls: T) -> T:
        name = cls.name
        if name in table:
            raise ValueError(f"{kind} {name!r} is registered twice")
        table[name] = cls
        return cls

    return decorator


register_attack = _register(ATTACKS, "attack")
register_defense = _register(DEFENSES, "defense")


def lookup(table: dict[str, Any], kind: str, name: str) -> Any:
    if name not in table:
        raise UnknownStrategy(f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(table))}")
    return table[name]
