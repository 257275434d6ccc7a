"""How much search a duel may spend: rounds, trials per study, seeds, the stopping gap."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """``rounds`` of the double oracle at most; each round one attacker study of
    ``attacker_trials`` new trials and one defender study of ``defender_trials`` (plus the
    warm-start trials of strategies already played); each cell averaged over ``seeds`` seeds;
    stop when the gap is at most ``epsilon``; the value's confidence interval from ``ci_seeds``
    fresh seeds."""

    rounds: int
    attacker_trials: int
    defender_trials: int
    epsilon: float
    seeds: int = 1
    ci_seeds: int = 2

    def __post_init__(self) -> None:
        for name in ("rounds", "attacker_trials", "defender_trials", "seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        if self.ci_seeds < 0 or self.epsilon < 0:
            raise ValueError("--ci-seeds and --epsilon must not be negative")


BUDGETS = {
    "quick": Budget(rounds=2, attacker_trials=4, defender_trials=3, epsilon=0.02, ci_seeds=2),
    "default": Budget(rounds=4, attacker_trials=10, defender_trials=8, epsilon=0.02, ci_seeds=3),
    "thorough": Budget(
        rounds=8, attacker_trials=30, defender_trials=20, epsilon=0.01, seeds=2, ci_seeds=5
    ),
}
