"""The value's interval against simulated noisy games whose true value is known.

Each simulation draws a payoff matrix ``M`` (4 x 4, payoffs in [0.1, 0.9]) and measures it on
seeds with noise shaped like Arena's: one draw per attacker and seed shared by the row (the
BadNet of that seed) plus one per cell (the defense's draws). The interval is computed the way
a duel computes it, and must hold the value of ``M`` 90-99% of the time at a nominal 95%.
"""

from __future__ import annotations

import numpy as np
import pytest

from arena.game.double_oracle import resolved
from arena.game.noise import (
    game_interval,
    gap_resolution,
    measure_until,
    pooled_sd,
    seeds_for,
    t_interval,
)
from arena.game.solver import solve_zero_sum

SIMULATIONS = 200


def noisy_game(seed: int, sd: float, size: int = 4):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    m = rng.uniform(0.1, 0.9, size=(size, size))

    def measure(n: int) -> np.ndarray:
        row = rng.normal(0, sd / 2, size=(n, size, 1))
        return m + row + rng.normal(0, sd, size=(n, size, size))

    return solve_zero_sum(m).value, measure


@pytest.mark.parametrize("sd", [0.05, 0.15])
@pytest.mark.parametrize("seeds", [2, 10])  # the quick and the default budgets' fresh seeds
def test_the_interval_on_fixed_seeds_covers_the_true_value(sd: float, seeds: int) -> None:
    covered = 0
    for s in range(SIMULATIONS):
        value, measure = noisy_game(s, sd)
        est = game_interval(measure(seeds)).value
        covered += est.low <= value <= est.high
    assert 0.90 <= covered / SIMULATIONS <= 0.99


@pytest.mark.parametrize("sd", [0.05, 0.15])
def test_the_two_stage_seed_rule_covers_the_true_value(sd: float) -> None:
    covered, seeds, halves = 0, [], []
    for s in range(SIMULATIONS):
        value, measure = noisy_game(s, sd)
        drawn = []

        def counted(n: int, measure=measure, drawn=drawn) -> np.ndarray:  # type: ignore[no-untyped-def]
            drawn.append(n)
            return measure(n)

        est = measure_until(counted, first=3, half_width=0.05, most=16).value
        covered += est.low <= value <= est.high
        seeds.append(sum(drawn))
        halves.append(est.half_width)
    # a rule that sizes the sample from its own first seeds covers a little less than a fixed
    # count (docs/values.md): 0.90-0.96 where the fixed count covers 0.94-0.96
    assert 0.88 <= covered / SIMULATIONS <= 0.99
    assert min(seeds) >= 3 and max(seeds) <= 16
    # the rule adds seeds where the noise asks for them; it stops at the first stage only if
    # the target is met there, and the second stage meets it in most games it does not cap
    assert np.mean(seeds) > 3
    assert all(h <= 0.05 for h, n in zip(halves, seeds, strict=True) if n == 3)
    topped = [h <= 0.05 for h, n in zip(halves, seeds, strict=True) if 3 < n < 16]
    print(
        f"sd {sd}: coverage {covered / SIMULATIONS:.3f}, mean seeds {np.mean(seeds):.1f}, "
        f"target met in {np.mean(topped):.2f} of {len(topped)} topped-up games"
    )
    assert np.mean(topped) >= (0.5 if sd < 0.1 else 0.1)


def test_the_fixed_mix_interval_misses_the_value_that_the_resolved_game_covers() -> None:
    # why the game is solved again on the fresh seeds: the duel's mixes were chosen on noisy
    # cells, and the value of that fixed pair is off the game's value by more than its noise
    fixed = resolved_ = 0
    for s in range(SIMULATIONS):
        value, measure = noisy_game(s, 0.15)
        eq = solve_zero_sum(measure(1)[0])
        fresh = measure(8)
        pair = t_interval([float(eq.attacker_mix @ f @ eq.defender_mix) for f in fresh], clip=None)
        fixed += pair.low <= value <= pair.high
        game = game_interval(fresh).value
        resolved_ += game.low <= value <= game.high
    assert fixed / SIMULATIONS < 0.88 < 0.90 <= resolved_ / SIMULATIONS


def test_a_known_matrix_has_no_noise() -> None:
    m = np.array([[0.2, 0.8], [0.7, 0.3]])
    game = game_interval(np.stack([m, m, m]))
    assert game.value.mean == pytest.approx(solve_zero_sum(m).value)
    assert game.value.half_width == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        game_interval(m)


def test_seeds_for_the_target() -> None:
    est = t_interval([0.4, 0.5, 0.6])  # sd 0.1: (1.96 * 0.1 / 0.05)^2 = 15.4
    assert seeds_for(est, 0.05) == 16
    assert seeds_for(est, 0.5) == 4  # at least one more than measured
    assert seeds_for(t_interval([0.4]), 0.05) == 2


def test_the_stopping_rule_needs_a_gap_the_noise_resolves() -> None:
    assert pooled_sd([[0.5], [0.2]]) is None
    sd = pooled_sd([[0.4, 0.6], [0.1, 0.3, 0.2]])
    assert sd == pytest.approx(np.sqrt((0.02 + 0.02) / 3))
    res = gap_resolution(0.1, seeds=1)
    assert res == pytest.approx(1.6449 * 0.1 * np.sqrt(2), rel=1e-4)
    assert gap_resolution(0.1, seeds=4) == pytest.approx(res / 2)
    assert resolved(0.0, None, 0.02)  # noise unknown: the gap is taken at its word
    assert not resolved(0.0, res, 0.02)  # a zero gap on noisy cells proves nothing
    assert resolved(0.0, 0.01, 0.02) and not resolved(0.03, 0.0, 0.02)
