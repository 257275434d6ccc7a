"""Defenses, one module per family; importing this package registers them all."""

from strategies.defenses import abs, none, strip  # noqa: F401  (registration)
from strategies.defenses.base import Defense, DefenseConfig, Deployment, Panel
from strategies.defenses.pipeline import Pipeline, build_defense, parse_defenses

__all__ = [
    "Defense",
    "DefenseConfig",
    "Deployment",
    "Panel",
    "Pipeline",
    "build_defense",
    "parse_defenses",
]
