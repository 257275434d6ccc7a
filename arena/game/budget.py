"""How much search a duel may spend: rounds, trials per study, seeds, the stopping gap."""

from __future__ import annotations

from dataclasses import dataclass

from arena.core.config import AT_LEAST_ONE, NON_NEGATIVE, check_option


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
        """Counts are integers (at least 1; ``ci_seeds`` may be 0: no interval) and
        ``epsilon`` is a finite number of at least 0; each error names its CLI flag."""
        for name in ("rounds", "attacker_trials", "defender_trials", "seeds"):
            check_option(flag(name), getattr(self, name), AT_LEAST_ONE, integer=True)
        check_option(flag("ci_seeds"), self.ci_seeds, NON_NEGATIVE, integer=True)
        check_option(flag("epsilon"), self.epsilon, NON_NEGATIVE)


def flag(field: str) -> str:
    """The CLI flag of a :class:`Budget` field: ``ci_seeds`` -> ``--ci-seeds``."""
    return "--" + field.replace("_", "-")


BUDGETS = {
    "quick": Budget(rounds=2, attacker_trials=4, defender_trials=3, epsilon=0.02, ci_seeds=2),
    "default": Budget(rounds=4, attacker_trials=10, defender_trials=8, epsilon=0.02, ci_seeds=3),
    "thorough": Budget(
        rounds=8, attacker_trials=30, defender_trials=20, epsilon=0.01, seeds=2, ci_seeds=5
    ),
}
