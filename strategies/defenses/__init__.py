"""Defenses, one module per family; importing this package registers them all."""

from strategies.defenses import (  # noqa: F401  (registration)
    abs,
    bdmae,
    deepsweep,
    februus,
    fine_pruning,
    mesa,
    neural_cleanse,
    none,
    shrinkpad,
    strip,
)
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
