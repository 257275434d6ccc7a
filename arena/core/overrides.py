"""``KEY=VALUE`` overrides of a config from the command line, typed by the config's fields."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from arena.core.config import warn_outside_search


def parse_value(text: str, kind: Any) -> Any:
    if kind in (bool, "bool"):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"{text!r} is not a boolean (use true or false)")
    if kind in (int, "int"):
        return int(text)
    if kind in (float, "float"):
        return float(text)
    return text


def apply_overrides(config: Any, items: list[str] | None, what: str) -> Any:
    """``config`` with ``KEY=VALUE`` items applied; a bad key or value is a one-line error."""
    if not items:
        return config
    cls = type(config)
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    updates: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"{what} parameter {item!r} is not KEY=VALUE")
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ValueError(f"{what} has no parameter {key!r}; its parameters: {known}")
        try:
            updates[key] = parse_value(text, hints[key])
        except ValueError:
            raise ValueError(
                f"{what} parameter {key}={text!r} is not a valid {hints[key].__name__}"
            ) from None
    updated = dataclasses.replace(config, **updates)
    warn_outside_search(updated, updates)
    return updated
