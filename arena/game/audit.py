"""The audit: independent best responses to a duel's final mixes.

The double oracle's bounds are only as good as its oracles, which are short searches. The
audit asks the question a reader of a published value asks: would a harder, independent search
have found a better response? Given the final mixes ``(x, y)`` and the duel's bounds
``[LB, UB]``, it runs one more search per side (in Arena: an Optuna study with another sampler,
its own budget and seeds the duel never played), then re-measures each side's best find on
fresh *confirmation* seeds, which the search never saw, so the winner's curse of picking the
best of many noisy trials does not inflate the estimate:

    a* = audited best attack against y,   u_s(a*) = sum_j y_j M_s(a*, d_j)   per seed s
    d* = audited best defense against x,  l_s(d*) = sum_i x_i M_s(a_i, d*)   per seed s

    audited exploitability = mean_s (u_s(a*) - l_s(d*))   (paired over the same seeds)

The duel's own best responses (the strategies behind its bounds) and the strategies of each
side's own mix are confirmed on the same seeds beside the search's finds, and each side's
audited response is the best of them there: an audit search that does worse than the duel's
oracle (a BadNet that worked on its one search seed only) must not make the mixes look less
exploitable than the duel already showed them to be. With the mix's own strategies among the
candidates, the audited exploitability is never below 0 on average: on the same seeds, the
best row against ``y`` scores at least ``x^T M y``, and the best column against ``x`` at most.
The response records which candidate it was (``source``).

The duel's value **stands** unless the audit found a response better than the duel's bound by
more than the noise: the interval of ``u(a*)`` lies wholly above UB, or that of ``l(d*)``
wholly below LB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from arena.game.double_oracle import Oracle, Response
from arena.game.noise import Estimate, t_interval

A = TypeVar("A")
D = TypeVar("D")
SUPPORT = 1e-9

Measure = Callable[[str, Any, Sequence[Any], np.ndarray], Sequence[float]]
"""``measure(side, strategy, opponents, weights)``: the strategy's mix-weighted payoff against
the opponents on each confirmation seed (the same seeds, in the same order, for both sides)."""


@dataclass(frozen=True)
class AuditedResponse:
    """One side's audited best response: what its search found (``search_value``, on the
    search's seeds) and that response re-measured on the confirmation seeds (``confirmed``),
    against the duel's ``bound`` on that side (the upper bound for the attacker, the lower for
    the defender)."""

    side: str
    strategy: Any
    search_value: float
    confirmed: Estimate
    bound: float
    study: str = ""
    trials: int = 0
    # which candidate was best on the confirmation seeds: "audit" (the search's find), "duel"
    # (the duel's last-round response) or "mix" (a strategy of the side's own final mix)
    source: str = "audit"

    @property
    def beats_bound(self) -> bool:
        """The response is better for its side than the duel's bound by more than its noise."""
        c = self.confirmed
        if self.side == "attacker":
            return c.low is not None and c.low > self.bound
        return c.high is not None and c.high < self.bound


@dataclass(frozen=True)
class Audit(Generic[A, D]):
    attacker: AuditedResponse
    defender: AuditedResponse
    exploitability: Estimate

    @property
    def stands(self) -> bool:
        """Neither side's audited response beats the duel's bound by more than its noise."""
        return not (self.attacker.beats_bound or self.defender.beats_bound)


def audit(
    attackers: Sequence[A],
    defenders: Sequence[D],
    attacker_mix: np.ndarray,
    defender_mix: np.ndarray,
    *,
    lower_bound: float,
    upper_bound: float,
    attacker_oracle: Oracle[A, D],
    defender_oracle: Oracle[D, A],
    measure: Measure,
    known_attacker: Response[A] | None = None,
    known_defender: Response[D] | None = None,
) -> Audit[A, D]:
    """Audit the mixes ``(x, y)`` over ``attackers`` and ``defenders`` (see the module
    docstring). Each oracle is called once, as round 1, with the side's strategies in the
    support of its own mix, the opponent's strategies and the opponent's mix; ``known_*`` are
    the duel's own best responses against the same mixes. Each side's find, its known response
    and the strategies of its own mix are confirmed on the same seeds, and the best kept."""
    x, y = np.asarray(attacker_mix, float), np.asarray(defender_mix, float)
    rows = [i for i, w in enumerate(x) if w > SUPPORT]
    cols = [j for j, w in enumerate(y) if w > SUPPORT]
    att = attacker_oracle(1, [attackers[i] for i in rows], list(defenders), y)
    dfn = defender_oracle(1, [defenders[j] for j in cols], list(attackers), x)
    against: dict[str, tuple[list[Any], np.ndarray, float, float]] = {
        "attacker": ([defenders[j] for j in cols], y[cols], upper_bound, 1.0),
        "defender": ([attackers[i] for i in rows], x[rows], lower_bound, -1.0),
    }
    chosen: dict[str, tuple[AuditedResponse, list[float]]] = {}
    own: dict[str, list[Any]] = {
        "attacker": [attackers[i] for i in rows],
        "defender": [defenders[j] for j in cols],
    }
    pairs = (("attacker", att, known_attacker), ("defender", dfn, known_defender))
    for side, found, known in pairs:
        opponents, weights, bound, sign = against[side]
        candidates: list[tuple[Response[Any], str]] = [(found, "audit")]
        if known is not None:
            candidates.append((known, "duel"))
        candidates += [(Response(s, float("nan")), "mix") for s in own[side]]
        best: tuple[AuditedResponse, list[float]] | None = None
        seen: list[Any] = []
        for response, source in candidates:
            if response.strategy in seen:
                continue
            seen.append(response.strategy)
            values = list(measure(side, response.strategy, opponents, weights))
            if best is None or sign * np.mean(values) > sign * np.mean(best[1]):
                best = AuditedResponse(
                    side, response.strategy, response.value, t_interval(values), bound,
                    response.study, response.trials, source=source,
                ), values  # fmt: skip
        assert best is not None
        chosen[side] = best
    (a, up), (d, low) = chosen["attacker"], chosen["defender"]
    if len(up) != len(low) or len(up) < 2:
        raise ValueError("the audit needs the same two or more confirmation seeds on each side")
    gap = t_interval([u - v for u, v in zip(up, low, strict=True)], clip=None)
    return Audit(a, d, gap)
