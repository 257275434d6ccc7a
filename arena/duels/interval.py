"""The value's interval on fresh seeds, the stopping verdict against the cells' noise, and
every cell's payoffs seed by seed (docs/values.md): what :func:`arena.duels.run.run_duel` adds
to the double oracle's outcome once the loop has stopped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from arena.cell.play import Tally
from arena.cell.runner import Compute, play_rows
from arena.cell.setting import Setting
from arena.game import Outcome
from arena.game.budget import Budget
from arena.game.double_oracle import resolved
from arena.game.noise import gap_resolution, measure_until, pooled_sd

CI_SEED_OFFSET = 1000  # the value's confidence interval uses seeds the duel never played


NEAR = 0.25
"""The interval re-measures the strategies whose payoff against the duel's opposing mix is
within this of the value (the support always): a strategy further off enters the equilibrium
only if a payoff moves by more than this, far beyond a cell's usual noise over seeds."""


def interval_strategies(outcome: Outcome[Any, Any]) -> tuple[list[int], list[int]]:
    """Rows and columns of the restricted game the interval re-measures (see :data:`NEAR`)."""
    eq, m = outcome.equilibrium, outcome.matrix
    against_y = m @ eq.defender_mix
    against_x = eq.attacker_mix @ m
    rows = [
        i for i in range(m.shape[0]) if eq.attacker_mix[i] > 1e-9 or against_y[i] >= eq.value - NEAR
    ]
    cols = [
        j for j in range(m.shape[1]) if eq.defender_mix[j] > 1e-9 or against_x[j] <= eq.value + NEAR
    ]
    return rows, cols


Fresh = dict[tuple[int, int], list[float]]  # (row, column) of the matrix -> payoff per fresh seed


def value_interval(
    outcome: Outcome[Any, Any],
    budget: Budget,
    seed: int,
    setting: Setting,
    tally: Tally,
    compute: Compute | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], Fresh]:
    """The game's value re-measured on fresh seeds, with its 95% interval (docs/values.md):
    the restricted game's strategies near the equilibrium (:func:`interval_strategies`) are
    played against each other on ``budget.ci_seeds`` seeds the duel never played, the game is
    solved again on the mean of those cells, and :func:`~arena.game.noise.game_interval` gives
    the interval; while its half-width is above ``budget.ci_half_width``, more seeds are added
    (up to ``budget.max_ci_seeds``). Returns the ``value_ci`` record and every fresh cell's
    payoffs by seed."""
    empty: dict[str, Any] = {"seeds": [], "values": [], "mean": None, "low": None, "high": None}
    if budget.ci_seeds == 0:
        return empty, {}
    rows, cols = interval_strategies(outcome)
    fresh: Fresh = {(i, j): [] for i in rows for j in cols}
    seeds: list[int] = []

    def measure(n: int) -> np.ndarray:
        """The next ``n`` fresh seeds' matrices over ``rows`` x ``cols``."""
        new = [seed + CI_SEED_OFFSET + k for k in range(len(seeds), len(seeds) + n)]
        if on_phase:
            on_phase(
                f"confidence interval: {len(rows)} x {len(cols)} strategies on "
                f"{len(new)} fresh seed(s)" + (f", {len(seeds)} measured" if seeds else "")
            )
        played = play_rows(
            [(outcome.attackers[i], [outcome.defenders[j] for j in cols]) for i in rows],
            new,
            setting,
            tally,
            compute=compute,
        )
        for r, i in enumerate(rows):
            for c, j in enumerate(cols):
                fresh[i, j] += [cell.payoff for cell in played[r][c]]
        seeds.extend(new)
        return np.array(
            [[[played[r][c][k].payoff for c in range(len(cols))] for r in range(len(rows))]
             for k in range(len(new))]
        )  # fmt: skip

    game = measure_until(
        measure, first=budget.ci_seeds, half_width=budget.ci_half_width, most=budget.max_ci_seeds
    )
    record = {
        "seeds": seeds,
        **game.value.as_dict(),
        "method": "restricted game re-solved on fresh seeds; Student-t on the per-seed payoffs "
        "of its mixes",
        "half_width": game.value.half_width,
        "target_half_width": budget.ci_half_width or None,
        "attackers": [outcome.attackers[i].label for i in rows],
        "defenders": [outcome.defenders[j].label for j in cols],
        "attacker_mix": game.attacker_mix.tolist(),
        "defender_mix": game.defender_mix.tolist(),
    }
    return record, fresh


def judge_stop(outcome: Outcome[Any, Any], budget: Budget, fresh: Fresh) -> dict[str, Any]:
    """Why the duel stopped, with the noise of its cells now that the interval measured them
    on fresh seeds: a gap under epsilon that the noise cannot resolve is ``"within noise"``,
    not ``"converged"`` (:func:`arena.game.double_oracle.resolved`)."""
    last = outcome.rounds[-1]
    sd = pooled_sd(list(fresh.values()))
    res = last.resolution
    if sd is not None:
        res = gap_resolution(sd, budget.seeds)
    reason = outcome.stopped
    if reason == "converged" and not resolved(last.gap, res, budget.epsilon):
        reason = "within noise"
    return {
        "reason": reason,
        "gap": last.gap,
        "epsilon": budget.epsilon,
        "noise_sd": sd,
        "resolution": res,
    }


def cell_noise(
    outcome: Outcome[Any, Any],
    duel_seeds: Sequence[int],
    per_seed: dict[tuple[Any, Any], list[float]],
    fresh: Fresh,
    fresh_seeds: Sequence[int],
) -> dict[str, Any]:
    """Every cell's payoff on each seed it was played on (the duel's seeds, then the
    interval's fresh ones), their mean and standard error (``None`` from one seed)."""
    n_a, n_d = outcome.matrix.shape
    values = [
        [per_seed[outcome.attackers[i], outcome.defenders[j]] + fresh.get((i, j), [])
         for j in range(n_d)]
        for i in range(n_a)
    ]  # fmt: skip

    def stderr(v: list[float]) -> float | None:
        return float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None

    return {
        "seeds": {"duel": list(duel_seeds), "fresh": list(fresh_seeds)},
        "per_seed": values,
        "mean": [[float(np.mean(v)) for v in row] for row in values],
        "stderr": [[stderr(v) for v in row] for row in values],
    }
