"""The check of a strategy's config that every attack and defense shares, made once by their
bases: a field that declares ``choices`` in its search range takes one of them.

Numeric search ranges are not checked here: they bound what the studies search, not what a user
may ask for; a numeric field's valid domain is checked by the config itself when it is built
(:class:`arena.core.config.Validated`).

A strategy may accept a few values of a field besides its declared choices without the
studies searching them (``mtmta``'s ``all-to-all`` mapping); its base passes them as ``also``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arena.core.config import searchable_fields


def check_choices(
    strategy: str, config: Any, also: Mapping[str, tuple[Any, ...]] | None = None
) -> None:
    """Raise a one-line ``ValueError`` naming ``strategy``, the field, its value and the
    allowed values when a field of ``config`` that declares choices holds another value;
    ``also`` maps a field's name to the values it accepts besides its declared choices."""
    extra = also or {}
    for f, rng in searchable_fields(type(config)):
        if rng.choices is None:
            continue
        allowed = (*rng.choices, *extra.get(f.name, ()))
        value = getattr(config, f.name)
        if value not in allowed:
            hint = f.metadata.get("help", "")
            raise ValueError(
                f"{strategy}: {f.name}={value!r} is not a choice; choose one of "
                + ", ".join(repr(c) for c in allowed)
                + (f" ({hint})" if hint else "")
            )
