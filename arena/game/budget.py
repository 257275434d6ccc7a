"""How much search a duel may spend: rounds, trials per study, seeds, the stopping gap."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from arena.core.config import AT_LEAST_ONE, NON_NEGATIVE, check_option


@dataclass(frozen=True)
class Budget:
    """``rounds`` of the double oracle at most; each round one attacker study of
    ``attacker_trials`` new trials and one defender study of ``defender_trials`` (plus the
    warm-start trials of strategies already played); each cell averaged over ``seeds`` seeds;
    stop when the gap is at most ``epsilon``; the value's confidence interval from ``ci_seeds``
    fresh seeds, and more (up to ``max_ci_seeds``) while its half-width is above
    ``ci_half_width`` (0: exactly ``ci_seeds``); with ``prune``, an attacker trial whose
    BadNet cannot pass the user's gate stops early (:mod:`arena.cell.pruning`); with
    ``reproducible``, each trial of a round is sampled once the trials twice the concurrent
    ones or more before it have ended, and its study's sampler is told of them in the order
    they were sampled and of no later one, so that what it samples does not depend on which
    trial finished first: the duel replays from its seed
    (:class:`studies.oracle.TuneOracle`, README "A duel is reproducible from its storage")."""

    rounds: int
    attacker_trials: int
    defender_trials: int
    epsilon: float
    seeds: int = 1
    ci_seeds: int = 2
    ci_half_width: float = 0.0
    max_ci_seeds: int = 0
    prune: bool = True
    reproducible: bool = False

    def __post_init__(self) -> None:
        """Counts are integers (at least 1; ``ci_seeds`` may be 0: no interval) and
        ``epsilon`` is a finite number of at least 0; each error names its CLI flag."""
        for name in ("rounds", "attacker_trials", "defender_trials", "seeds"):
            check_option(flag(name), getattr(self, name), AT_LEAST_ONE, integer=True)
        check_option(flag("ci_seeds"), self.ci_seeds, NON_NEGATIVE, integer=True)
        check_option(flag("epsilon"), self.epsilon, NON_NEGATIVE)
        check_option(flag("ci_half_width"), self.ci_half_width, NON_NEGATIVE)
        check_option(flag("max_ci_seeds"), self.max_ci_seeds, NON_NEGATIVE, integer=True)
        if self.ci_half_width and self.max_ci_seeds < max(2, self.ci_seeds):
            raise ValueError(
                f"--ci-half-width {self.ci_half_width} needs --max-ci-seeds of at least "
                f"{max(2, self.ci_seeds)} (it is {self.max_ci_seeds}): the seeds it may add"
            )

    def identity(self) -> dict[str, object]:
        """What of the budget names a duel: every field, less the interval's target and cap
        where unset, pruning where on and reproducibility where off (so the names of duels from
        before they existed stay the same: such a duel, resumed, prunes)."""
        out = asdict(self)
        for name in ("ci_half_width", "max_ci_seeds"):
            if not out[name]:
                del out[name]
        if self.prune:
            del out["prune"]
        if not self.reproducible:
            del out["reproducible"]
        return out


def flag(field: str) -> str:
    """The CLI flag of a :class:`Budget` field: ``ci_seeds`` -> ``--ci-seeds``."""
    return "--" + field.replace("_", "-")


BUDGETS = {
    "quick": Budget(rounds=2, attacker_trials=4, defender_trials=3, epsilon=0.02, ci_seeds=2),
    # 10 fresh seeds: the value of badnets vs strip varies by ~0.06 from seed to seed, so its
    # interval is 0.05 wide each side (docs/values.md); a fixed count, not one chosen from the
    # first seeds' spread, which covers less often (--ci-half-width)
    "default": Budget(rounds=4, attacker_trials=10, defender_trials=8, epsilon=0.02, ci_seeds=10),
    "thorough": Budget(
        rounds=8, attacker_trials=30, defender_trials=20, epsilon=0.01, seeds=2, ci_seeds=16
    ),
}
