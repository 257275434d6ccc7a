"""The double-oracle loop over a restricted meta-game.

McMahan, Gordon & Blum, "Planning in the Presence of Cost Functions Controlled by an
Adversary" (ICML 2003): keep a finite set of strategies per side, solve the restricted zero-sum
game, ask each side's oracle for a best response to the other's mix, add the responses and
repeat. With exact oracles the loop stops at an equilibrium of the full game; with approximate
ones (Optuna studies here) its bounds are estimates, only as good as the oracles' search.

Round ``r`` with restricted matrix ``M`` and its equilibrium ``(x, y, v)``:

    UB = max(best attacker response to y, max_i (M y)_i)    >= v
    LB = min(best defender response to x, min_j (x^T M)_j)   <= v
    gap = UB - LB   (the NashConv of (x, y) against the oracles' findings)

The loop stops when ``gap <= epsilon`` or after ``rounds`` rounds, and reports the equilibrium
of the last round whose gap it measured. A gap under ``epsilon`` shows convergence only if the
cells' seed noise can resolve it: given the noise's ``resolution`` (the smallest gap it
resolves, :func:`arena.game.noise.gap_resolution`), the loop stops as ``"converged"`` only when
``gap + resolution <= epsilon``, and otherwise as ``"within noise"``: more rounds on cells this
noisy cannot tell the gap from zero, and more seeds per cell would be needed to go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from arena.game.solver import (
    Equilibrium,
    attacker_payoffs,
    best_pure_defense,
    defender_payoffs,
    solve_zero_sum,
)

log = logging.getLogger(__name__)

S = TypeVar("S", bound=Hashable)
Opp = TypeVar("Opp", bound=Hashable, contravariant=True)
A = TypeVar("A", bound=Hashable)
D = TypeVar("D", bound=Hashable)


@dataclass(frozen=True)
class Response(Generic[S]):
    """An oracle's answer: the best strategy it found and its payoff against the opponent's mix
    (the mix-weighted average of the cells), plus where it searched (the study's name)."""

    strategy: S
    value: float
    study: str = ""
    trials: int = 0


class Oracle(Protocol[S, Opp]):
    """A best-response oracle for one side."""

    def __call__(
        self, round_: int, own: Sequence[S], opponents: Sequence[Opp], opponent_mix: np.ndarray
    ) -> Response[S]: ...


@dataclass
class Round:
    """One round's restricted game, the oracles' answers and the bounds they give."""

    round: int
    value: float
    lower_bound: float
    upper_bound: float
    gap: float
    attacker_mix: list[float]
    defender_mix: list[float]
    attacker_response: float
    defender_response: float
    attacker_study: str
    defender_study: str
    added_attacker: bool = False
    added_defender: bool = False
    resolution: float | None = None  # the smallest gap the cells' noise resolves, if known


@dataclass
class Outcome(Generic[A, D]):
    """Where the loop stopped: both strategy sets, the matrix, the equilibrium whose gap was
    measured last, the rounds, and why it stopped (``"converged"``, ``"within noise"``,
    ``"budget"`` or ``"no new strategy"``)."""

    attackers: list[A]
    defenders: list[D]
    matrix: np.ndarray
    equilibrium: Equilibrium
    rounds: list[Round] = field(default_factory=list)
    stopped: str = "budget"

    @property
    def gap(self) -> float:
        return self.rounds[-1].gap if self.rounds else float("nan")

    def best_pure_defense(self) -> tuple[D, float]:
        j, worst = best_pure_defense(self.matrix)
        return self.defenders[j], worst


CellFn = Callable[[Sequence[tuple[A, D]]], Sequence[float]]
Respond = Callable[[int, Sequence[A], Sequence[D], Equilibrium], tuple[Response[A], Response[D]]]
"""Both sides' responses of a round at once: ``(round, attackers, defenders, equilibrium)`` to
``(attacker's response, defender's response)``."""


def _extend(
    matrix: np.ndarray, attackers: list[A], defenders: list[D], cells: CellFn[A, D]
) -> np.ndarray:
    """``matrix`` grown to ``len(attackers) x len(defenders)``, the new cells from ``cells``."""
    rows, cols = matrix.shape
    grown = np.full((len(attackers), len(defenders)), np.nan)
    grown[:rows, :cols] = matrix
    missing = [
        (i, j)
        for i in range(len(attackers))
        for j in range(len(defenders))
        if i >= rows or j >= cols
    ]
    if missing:
        values = cells([(attackers[i], defenders[j]) for i, j in missing])
        for (i, j), value in zip(missing, values, strict=True):
            grown[i, j] = value
    return grown


def double_oracle(
    attackers: Sequence[A],
    defenders: Sequence[D],
    *,
    cells: CellFn[A, D],
    attacker_oracle: Oracle[A, D],
    defender_oracle: Oracle[D, A],
    rounds: int,
    epsilon: float,
    on_round: Callable[[Round], None] | None = None,
    resolution: Callable[[], float | None] | None = None,
    respond: Respond[A, D] | None = None,
) -> Outcome[A, D]:
    """Run the double oracle from the initial strategy sets (see the module docstring).

    ``cells(pairs)`` returns the payoff of each ``(attacker, defender)`` pair; it is asked only
    for cells not yet in the matrix. Oracles get the round number (from 1), their own current
    strategies, the opponent's strategies and the opponent's mix over them. ``resolution()``,
    if given, is the smallest gap the cells' noise resolves now (``None``: not known yet).
    Both oracles of a round answer the same equilibrium, so they may run together:
    ``respond``, if given, asks for both responses at once instead of calling the oracles one
    after the other.
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    a_set, d_set = list(attackers), list(defenders)
    matrix = _extend(np.empty((0, 0)), a_set, d_set, cells)
    outcome: Outcome[A, D] | None = None
    for r in range(1, rounds + 1):
        eq = solve_zero_sum(matrix)
        if respond is not None:
            att, dfn = respond(r, a_set, d_set, eq)
        else:
            att = attacker_oracle(r, a_set, d_set, eq.defender_mix)
            dfn = defender_oracle(r, d_set, a_set, eq.attacker_mix)
        upper = max(att.value, float(attacker_payoffs(matrix, eq.defender_mix).max()))
        lower = min(dfn.value, float(defender_payoffs(matrix, eq.attacker_mix).min()))
        record = Round(
            round=r,
            value=eq.value,
            lower_bound=lower,
            upper_bound=upper,
            gap=max(0.0, upper - lower),
            attacker_mix=eq.attacker_mix.tolist(),
            defender_mix=eq.defender_mix.tolist(),
            attacker_response=att.value,
            defender_response=dfn.value,
            attacker_study=att.study,
            defender_study=dfn.study,
        )
        previous = outcome.rounds if outcome else []
        outcome = Outcome(list(a_set), list(d_set), matrix.copy(), eq, [*previous, record])
        converged = record.gap <= epsilon
        if converged or r == rounds:
            outcome.stopped = "converged" if converged else "budget"
            record.resolution = resolution() if resolution else None
            if converged and not resolved(record.gap, record.resolution, epsilon):
                outcome.stopped = "within noise"
            if on_round:
                on_round(record)
            break
        if att.strategy not in a_set:
            a_set.append(att.strategy)
            record.added_attacker = True
        if dfn.strategy not in d_set:
            d_set.append(dfn.strategy)
            record.added_defender = True
        if on_round:
            on_round(record)
        if not (record.added_attacker or record.added_defender):
            # Neither oracle found anything new: another round would ask the same questions.
            outcome.stopped = "no new strategy"
            break
        matrix = _extend(matrix, a_set, d_set, cells)
        log.info("round %d: value %.4f, bounds [%.4f, %.4f]", r, eq.value, lower, upper)
    assert outcome is not None
    return outcome


def resolved(gap: float, resolution: float | None, epsilon: float) -> bool:
    """Whether a measured ``gap`` shows the true gap is at most ``epsilon`` given the noise's
    ``resolution`` (unknown noise: taken at its word)."""
    return gap <= epsilon and (resolution is None or gap + resolution <= epsilon)
