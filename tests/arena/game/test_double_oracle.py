"""The double-oracle loop with exact oracles over a known matrix game."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from arena.game import Response, double_oracle, solve_zero_sum


def exact_oracles(full: np.ndarray):  # type: ignore[no-untyped-def]
    asked: list[tuple[str, int]] = []

    def attacker(r: int, own: Sequence[int], opp: Sequence[int], mix: np.ndarray) -> Response[int]:
        asked.append(("attacker", r))
        values = full[:, list(opp)] @ mix
        return Response(int(values.argmax()), float(values.max()), study=f"a{r}")

    def defender(r: int, own: Sequence[int], opp: Sequence[int], mix: np.ndarray) -> Response[int]:
        asked.append(("defender", r))
        values = mix @ full[list(opp), :]
        return Response(int(values.argmin()), float(values.min()), study=f"d{r}")

    def cells(pairs: Sequence[tuple[int, int]]) -> list[float]:
        return [float(full[i, j]) for i, j in pairs]

    return attacker, defender, cells, asked


@pytest.mark.parametrize("seed", range(8))
def test_exact_oracles_reach_the_full_games_value(seed: int) -> None:
    full = np.random.default_rng(seed).uniform(size=(12, 10))
    attacker, defender, cells, _ = exact_oracles(full)
    out = double_oracle(
        [0],
        [0],
        cells=cells,
        attacker_oracle=attacker,
        defender_oracle=defender,
        rounds=50,
        epsilon=1e-9,
    )
    assert out.stopped == "converged"
    assert out.equilibrium.value == pytest.approx(solve_zero_sum(full).value, abs=1e-6)
    assert out.gap <= 1e-9
    for r in out.rounds:
        assert r.lower_bound <= r.value + 1e-9 <= r.upper_bound + 2e-9
    np.testing.assert_allclose(out.matrix, full[np.ix_(out.attackers, out.defenders)])


def test_budget_stops_early_and_reports_the_measured_round() -> None:
    full = np.random.default_rng(3).uniform(size=(30, 30))
    attacker, defender, cells, asked = exact_oracles(full)
    seen: list[int] = []
    out = double_oracle(
        [0],
        [0],
        cells=cells,
        attacker_oracle=attacker,
        defender_oracle=defender,
        rounds=2,
        epsilon=0.0,
        on_round=lambda r: seen.append(r.round),
    )
    assert seen == [1, 2] and len(out.rounds) == 2
    assert asked == [("attacker", 1), ("defender", 1), ("attacker", 2), ("defender", 2)]
    assert out.stopped == "budget"
    assert out.matrix.shape == (len(out.attackers), len(out.defenders))
    # the reported equilibrium is the one of round 2's restricted game, whose gap was measured
    assert out.equilibrium.value == pytest.approx(out.rounds[-1].value)
    assert out.rounds[-1].gap > 0


def test_cells_are_asked_once_each() -> None:
    full = np.random.default_rng(5).uniform(size=(8, 8))
    attacker, defender, cells, _ = exact_oracles(full)
    asked: list[tuple[int, int]] = []

    def counting(pairs: Sequence[tuple[int, int]]) -> list[float]:
        asked.extend(pairs)
        return cells(pairs)

    out = double_oracle(
        [0],
        [0],
        cells=counting,
        attacker_oracle=attacker,
        defender_oracle=defender,
        rounds=20,
        epsilon=1e-9,
    )
    assert len(asked) == len(set(asked)) == out.matrix.size


def test_rounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rounds"):
        double_oracle(
            [0],
            [0],
            cells=lambda p: [0.0] * len(p),
            attacker_oracle=None,  # type: ignore[arg-type]
            defender_oracle=None,
            rounds=0,
            epsilon=0.0,
        )  # type: ignore[arg-type]
