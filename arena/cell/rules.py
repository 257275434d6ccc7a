"""The payoff rules: how a cell's measurements become the payoff ``u(a, d)``.

DESIGN.md, "The game":

* the user's gate: a BadNet whose clean accuracy is more than ``delta_attack`` below the clean
  model's is not deployed, ``payoff = 0``;
* the defender's gate: a defense that costs more than ``delta_defense`` of clean accuracy,
  rejects more than ``frr_budget`` of clean inputs, or flags the clean model scores as if no
  defense ran, ``payoff = asr``;
* otherwise a flagged BadNet is not deployed (``payoff = 0``), and an unflagged one scores the
  share of triggered inputs of non-target classes that pass the filter and reach their target
  after purification and repair (``sasr``).

An attack with several triggers (``mtsta``, ``mtmta``) is measured trigger by trigger
(:func:`measure_each`), each trigger is scored by the same rules, and the cell is that of the
trigger the attacker would deploy: the one with the highest payoff (:func:`best_trigger`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from arena.cell.setting import Gates
from arena.core.infer import accuracy
from arena.data import Split
from arena.models import ArenaNet
from strategies.defenses import Deployment

VERSION = 2
"""Raised by one whenever the rules or a measurement change what a cell scores: it enters every
cell's cache key and every duel's name, so no cell scored by the old rules is replayed."""

METRICS = ("ca", "asr", "sda", "sasr", "far", "frr")


@dataclass(frozen=True)
class Metrics:
    """The papers' metrics of a deployed defense: CA and ASR of the undefended BadNet; SDA
    (clean accuracy of the served system), FRR (clean inputs rejected), FAR (triggered inputs
    accepted) and SASR (triggered inputs accepted and sent to their target)."""

    ca: float
    asr: float
    sda: float
    sasr: float
    far: float
    frr: float


class Ruling(NamedTuple):
    """A cell's payoff, the gate that decided it (``"user"``, ``"defense"`` or ``None``) and why."""

    payoff: float
    decided_by: str | None
    reasons: list[str]


def measure(model: ArenaNet, deployed: Deployment, test: Split, triggered: Split) -> Metrics:
    """:class:`Metrics` of ``deployed`` (a defense fitted on ``model``) on the clean ``test``
    split and its ``triggered`` copy."""
    measured = measure_each(model, deployed, test, {"trigger": triggered})["trigger"]
    if measured is None:
        raise ValueError("no triggered test image to measure attack success on")
    return measured


def measure_clean(model: ArenaNet, deployed: Deployment, test: Split) -> tuple[float, float, float]:
    """CA of ``model``, and SDA and FRR of ``deployed``, on the clean ``test`` split."""
    ca = accuracy(model, test.x, test.y)
    sda = float((deployed.predict(test.x) == test.y).float().mean())
    frr = 1.0 - float(deployed.accept(test.x).float().mean())
    return ca, sda, frr


def measure_each(
    model: ArenaNet,
    deployed: Deployment,
    test: Split,
    triggered: Mapping[str, Split],
    clean: tuple[float, float, float] | None = None,
) -> dict[str, Metrics | None]:
    """:class:`Metrics` of ``deployed`` for each triggered test set, by trigger: CA, SDA and
    FRR (clean inputs: ``clean`` when already measured by :func:`measure_clean`) are shared;
    ASR, FAR and SASR are the trigger's own. ``None`` for a trigger with no test image to
    measure it on."""
    ca, sda, frr = clean or measure_clean(model, deployed, test)
    out: dict[str, Metrics | None] = {}
    for name, split in triggered.items():
        if len(split) == 0:
            out[name] = None
            continue
        passed = deployed.accept(split.x)
        reached = deployed.predict(split.x) == split.y
        out[name] = Metrics(
            ca=ca,
            asr=accuracy(model, split.x, split.y),
            sda=sda,
            frr=frr,
            far=float(passed.float().mean()),
            sasr=float((passed & reached).float().mean()),
        )
    return out


def best_trigger(scored: Mapping[str, tuple[Metrics, Ruling]]) -> str:
    """The trigger the attacker deploys: the highest payoff; on a tie, the highest SASR, then
    the highest ASR, then the first."""
    names = list(scored)
    return max(
        names,
        key=lambda n: (scored[n][1].payoff, scored[n][0].sasr, scored[n][0].asr, -names.index(n)),
    )


def user_rejects(clean_ca: float, ca: float, gates: Gates) -> str | None:
    """Why the user's gate rejects a BadNet of clean accuracy ``ca``, or ``None``."""
    if clean_ca - ca > gates.delta_attack:
        return f"BadNet CA {ca:.3f} is more than {gates.delta_attack} below {clean_ca:.3f}"
    return None


def score(
    m: Metrics, *, clean_ca: float, flagged: bool | None, clean_flagged: bool | None, gates: Gates
) -> Ruling:
    """The payoff of a cell and which gate, if any, decided it (see the module docstring).

    ``m.far`` does not enter the payoff directly: a filter's acceptances are already inside
    ``m.sasr``."""
    rejected = user_rejects(clean_ca, m.ca, gates)
    if rejected:
        return Ruling(0.0, "user", [rejected])
    reasons: list[str] = []
    if m.ca - m.sda > gates.delta_defense:
        cost = m.ca - m.sda
        reasons.append(f"defense costs {cost:.3f} of clean accuracy (> {gates.delta_defense})")
    if m.frr > gates.frr_budget:
        reasons.append(f"defense rejects {m.frr:.3f} of clean inputs (> {gates.frr_budget})")
    if clean_flagged:
        reasons.append("defense flags the clean reference model")
    if reasons:
        return Ruling(m.asr, "defense", reasons)
    if flagged:
        return Ruling(0.0, None, ["BadNet flagged: not deployed"])
    return Ruling(m.sasr, None, [])
