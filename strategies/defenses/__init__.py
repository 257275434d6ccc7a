"""Defenses, one module per family; importing this package registers them all."""

from strategies.defenses import abs, none, strip  # noqa: F401  (registration)
from strategies.defenses.base import Defense, DefenseConfig, Deployment

__all__ = ["Defense", "DefenseConfig", "Deployment"]
