"""Known-answer tests of the zero-sum LP solver."""

from __future__ import annotations

import numpy as np
import pytest

from arena.game import (
    attacker_payoffs,
    best_pure_defense,
    defender_payoffs,
    maximin_mix,
    minimax_mix,
    nash_conv,
    solve_zero_sum,
)

RPS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])


def test_rock_paper_scissors_is_uniform_with_value_zero() -> None:
    eq = solve_zero_sum(RPS)
    np.testing.assert_allclose(eq.attacker_mix, [1 / 3] * 3, atol=1e-9)
    np.testing.assert_allclose(eq.defender_mix, [1 / 3] * 3, atol=1e-9)
    assert eq.value == pytest.approx(0.0, abs=1e-9)
    assert nash_conv(RPS, eq.attacker_mix, eq.defender_mix) == pytest.approx(0.0, abs=1e-9)


def test_matching_pennies_and_a_saddle_point() -> None:
    eq = solve_zero_sum([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(eq.attacker_mix, [0.5, 0.5], atol=1e-9)
    assert eq.value == pytest.approx(0.5)
    saddle = solve_zero_sum([[0.3, 0.9], [0.1, 0.2]])  # row 0 dominates; column 0 is best vs it
    np.testing.assert_allclose(saddle.attacker_mix, [1.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(saddle.defender_mix, [1.0, 0.0], atol=1e-9)
    assert saddle.value == pytest.approx(0.3)


@pytest.mark.parametrize("seed", range(20))
def test_no_pure_deviation_gains_on_random_matrices(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = rng.uniform(0, 1, size=rng.integers(1, 9, size=2))
    eq = solve_zero_sum(m)
    assert eq.attacker_value == pytest.approx(eq.defender_value, abs=1e-6)  # the two LPs agree
    assert eq.value == pytest.approx(eq.attacker_value, abs=1e-6)
    assert attacker_payoffs(m, eq.defender_mix).max() <= eq.value + 1e-6
    assert defender_payoffs(m, eq.attacker_mix).min() >= eq.value - 1e-6
    for mix in (eq.attacker_mix, eq.defender_mix):
        assert mix.min() >= 0 and mix.sum() == pytest.approx(1.0)


def test_inputs_are_not_mutated_and_bad_matrices_are_refused() -> None:
    m = RPS.copy()
    solve_zero_sum(m)
    maximin_mix(m)
    minimax_mix(m)
    np.testing.assert_array_equal(m, RPS)
    with pytest.raises(ValueError, match="2-D"):
        solve_zero_sum([1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        solve_zero_sum([[np.nan]])


def test_nash_conv_is_positive_off_equilibrium() -> None:
    pure_rock = np.array([1.0, 0.0, 0.0])
    assert nash_conv(RPS, pure_rock, pure_rock) == pytest.approx(2.0)  # paper: +1 for each side


def test_best_pure_defense_is_the_smallest_worst_case() -> None:
    j, worst = best_pure_defense([[0.9, 0.2, 0.5], [0.1, 0.6, 0.4]])
    assert (j, worst) == (2, pytest.approx(0.5))
