"""Attacks, one module per family; importing this package registers them all."""

from strategies.attacks import (  # noqa: F401  (registration)
    aaa,
    badnets,
    badnets_dynamic,
    blend_cartoon,
    blend_noise,
    cla,
    fsa,
    glasses,
    iadba,
    issba,
    ls,
    mtmta,
    mtsta,
    pn,
    refool,
    sg,
    sig,
    tca,
    wanet,
)
from strategies.attacks.base import Attack, AttackConfig, Poisoned

__all__ = ["Attack", "AttackConfig", "Poisoned"]
