"""The game: the zero-sum meta-game's LP solver and the double-oracle loop (pure NumPy)."""

from arena.game.double_oracle import Oracle, Outcome, Response, Round, double_oracle
from arena.game.solver import (
    Equilibrium,
    SolverError,
    attacker_payoffs,
    best_pure_defense,
    defender_payoffs,
    maximin_mix,
    minimax_mix,
    nash_conv,
    solve_zero_sum,
)

__all__ = [
    "Equilibrium",
    "Oracle",
    "Outcome",
    "Response",
    "Round",
    "SolverError",
    "attacker_payoffs",
    "best_pure_defense",
    "defender_payoffs",
    "double_oracle",
    "maximin_mix",
    "minimax_mix",
    "nash_conv",
    "solve_zero_sum",
]
