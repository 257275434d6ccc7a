"""The players' moves: attacks and defenses, registered by name.

``ATTACKS`` and ``DEFENSES`` map CLI names to strategy classes; ``attack_class`` and
``defense_class`` look a name up and, for an unknown one, list the known names.
"""

from __future__ import annotations

import strategies.attacks
import strategies.defenses  # noqa: F401  (registration)
from strategies.registry import ATTACKS, DEFENSES, UnknownStrategy, lookup


def attack_class(name: str) -> type[strategies.attacks.Attack]:
    cls: type[strategies.attacks.Attack] = lookup(ATTACKS, "attack", name)
    return cls


def defense_class(name: str) -> type[strategies.defenses.Defense]:
    cls: type[strategies.defenses.Defense] = lookup(DEFENSES, "defense", name)
    return cls


__all__ = ["ATTACKS", "DEFENSES", "UnknownStrategy", "attack_class", "defense_class"]
