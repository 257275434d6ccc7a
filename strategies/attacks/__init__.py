"""Attacks, one module per family; importing this package registers them all."""

from strategies.attacks import badnets, tca  # noqa: F401  (registration)
from strategies.attacks.base import Attack, AttackConfig, Poisoned

__all__ = ["Attack", "AttackConfig", "Poisoned"]
