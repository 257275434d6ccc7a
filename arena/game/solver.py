"""The meta-game: a finite two-player zero-sum game given by its payoff matrix.

Rows are the attacker's strategies (the maximiser), columns the defender's (the minimiser),
``M[i, j] = u(a_i, d_j)``. Everything here is a pure function of NumPy arrays; inputs are never
mutated. Formulas follow von Neumann's minimax theorem as an LP (e.g. Shoham & Leyton-Brown,
*Multiagent Systems*, 2009, section 4.2) and the NashConv of Lanctot et al., "A Unified
Game-Theoretic Approach to Multiagent Reinforcement Learning" (NeurIPS 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linprog

Vector = NDArray[np.float64]


class SolverError(RuntimeError):
    """The LP solver did not return an optimum (it should not, for a finite matrix)."""


@dataclass(frozen=True)
class Equilibrium:
    """Maximin strategies of a zero-sum matrix game.

    ``attacker_mix`` (x) and ``defender_mix`` (y) are probability vectors; ``value`` is
    ``x^T M y``; ``attacker_value`` and ``defender_value`` are the optima of the two LPs, equal
    (up to solver tolerance) by the minimax theorem.
    """

    attacker_mix: Vector
    defender_mix: Vector
    value: float
    attacker_value: float
    defender_value: float


def _as_matrix(payoff: ArrayLike) -> NDArray[np.float64]:
    m = np.array(payoff, dtype=np.float64)  # a copy: callers' arrays are never touched
    if m.ndim != 2 or 0 in m.shape:
        raise ValueError(f"a payoff matrix must be 2-D and non-empty, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("a payoff matrix must be finite")
    return m


def _simplex(z: Vector) -> Vector:
    """Clip the LP's round-off (tiny negatives) and renormalise to sum 1."""
    z = np.clip(z, 0.0, None)
    return z / z.sum()


def maximin_mix(payoff: ArrayLike) -> tuple[Vector, float]:
    """The row player's (maximiser's) optimal mix and the game value, from the LP

        max_{x, v} v   s.t.   sum_i x_i M[i, j] >= v  for every column j,
                              sum_i x_i = 1,  x >= 0,

    solved by HiGHS through :func:`scipy.optimize.linprog`.
    """
    m = _as_matrix(payoff)
    rows, cols = m.shape
    c = np.zeros(rows + 1)
    c[-1] = -1.0  # linprog minimises: maximise v as minimise -v
    a_ub = np.hstack([-m.T, np.ones((cols, 1))])  # v - sum_i x_i M[i, j] <= 0
    a_eq = np.hstack([np.ones((1, rows)), np.zeros((1, 1))])
    bounds = [(0.0, None)] * rows + [(None, None)]
    res = linprog(
        c, A_ub=a_ub, b_ub=np.zeros(cols), A_eq=a_eq, b_eq=[1.0], bounds=bounds, method="highs"
    )
    if res.status != 0:
        raise SolverError(f"HiGHS failed on the maximin LP: {res.message}")
    return _simplex(res.x[:rows]), float(res.x[-1])


def minimax_mix(payoff: ArrayLike) -> tuple[Vector, float]:
    """The column player's (minimiser's) optimal mix and the game value, from the dual LP

    min_{y, w} w   s.t.   sum_j M[i, j] y_j <= w  for every row i,
                          sum_j y_j = 1,  y >= 0.
    """
    value_of_transpose = maximin_mix(-_as_matrix(payoff).T)
    return value_of_transpose[0], -value_of_transpose[1]


def solve_zero_sum(payoff: ArrayLike) -> Equilibrium:
    """Both players' maximin mixes of ``M`` and the value ``x^T M y`` (minimax theorem)."""
    m = _as_matrix(payoff)
    x, v = maximin_mix(m)
    y, w = minimax_mix(m)
    return Equilibrium(x, y, float(x @ m @ y), v, w)


def attacker_payoffs(payoff: ArrayLike, defender_mix: ArrayLike) -> Vector:
    """Each attacker strategy's payoff against the defender's mix: ``(M y)_i``."""
    return _as_matrix(payoff) @ np.asarray(defender_mix, dtype=np.float64)


def defender_payoffs(payoff: ArrayLike, attacker_mix: ArrayLike) -> Vector:
    """Each defender strategy's payoff against the attacker's mix: ``(x^T M)_j``."""
    return np.asarray(attacker_mix, dtype=np.float64) @ _as_matrix(payoff)


def nash_conv(payoff: ArrayLike, attacker_mix: ArrayLike, defender_mix: ArrayLike) -> float:
    """NashConv of the profile ``(x, y)``: the sum of what each player gains by its best pure
    deviation,

        NashConv = (max_i (M y)_i - x^T M y) + (x^T M y - min_j (x^T M)_j)
                 = max_i (M y)_i - min_j (x^T M)_j  >= 0,

    zero exactly at an equilibrium. In the double oracle, the maxima run over each side's whole
    strategy space (as found by its oracle), giving the gap ``UB - LB``.
    """
    return float(
        attacker_payoffs(payoff, defender_mix).max() - defender_payoffs(payoff, attacker_mix).min()
    )


def best_pure_defense(payoff: ArrayLike) -> tuple[int, float]:
    """The defender strategy with the smallest worst case, ``argmin_j max_i M[i, j]``, and that
    worst case: what the defender gets without randomising."""
    worst = _as_matrix(payoff).max(axis=0)
    j = int(worst.argmin())
    return j, float(worst[j])
