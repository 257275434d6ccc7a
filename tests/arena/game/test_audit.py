"""The audit on a small synthetic game: a continuous game whose duel missed a far better
attack, searched by an Optuna study with a QMC sampler as Arena's audit searches, and measured
with seed noise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
import pytest

from arena.game import Response
from arena.game.audit import audit
from arena.game.noise import t_interval

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

NOISE = 0.02
CONFIRM = (3000, 3001, 3002)


def payoff(a: float, d: float, seed: int) -> float:
    """The attack at ``a`` succeeds unless the defense at ``d`` covers it (within ~0.2), with
    seed noise; clipped to a share."""
    clean = 1.0 - float(np.exp(-(((a - d) / 0.2) ** 2)))
    noise = np.random.default_rng([seed, int(a * 1e6), int(d * 1e6)]).normal(0, NOISE)
    return float(np.clip(clean + noise, 0.0, 1.0))


def mixed(side: str, s: float, opponents: Sequence[float], w: np.ndarray, seed: int) -> float:
    w = np.asarray(w) / np.sum(w)
    if side == "attacker":
        return float(sum(wk * payoff(s, o, seed) for wk, o in zip(w, opponents, strict=True)))
    return float(sum(wk * payoff(o, s, seed) for wk, o in zip(w, opponents, strict=True)))


def study_oracle(side: str, trials: int, searched: list[str]):  # type: ignore[no-untyped-def]
    """A best-response search over [0, 1] by an Optuna QMC study on search seed 2000."""

    def oracle(r: int, own: Sequence[float], opp: Sequence[float], mix: np.ndarray) -> Response:
        keep = [i for i, w in enumerate(mix) if w > 1e-9]
        sampler = optuna.samplers.QMCSampler(scramble=True, seed=7)
        study = optuna.create_study(
            direction="maximize" if side == "attacker" else "minimize", sampler=sampler
        )
        study.optimize(
            lambda t: mixed(side, t.suggest_float("s", 0, 1), [opp[i] for i in keep],
                            mix[keep], 2000),
            n_trials=trials,
        )  # fmt: skip
        searched.append(side)
        return Response(float(study.best_params["s"]), float(study.best_value), "synthetic", trials)

    return oracle


def measure(side: str, s: float, opponents: Sequence[float], w: np.ndarray) -> list[float]:
    return [mixed(side, s, opponents, w, seed) for seed in CONFIRM]


def play(attackers: list[float], defenders: list[float], **kwargs: Any) -> Any:
    """:func:`audit` of uniform mixes over ``attackers`` and ``defenders`` (the duel's)."""
    x = np.full(len(attackers), 1 / len(attackers))
    y = np.full(len(defenders), 1 / len(defenders))
    return audit(attackers, defenders, x, y, **kwargs)


@pytest.fixture(autouse=True)
def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_the_audit_finds_the_attack_the_duel_missed() -> None:
    # the duel played attacks at 0.10 and 0.20 against a defense at 0.15 and believed no
    # attack did better than 0.10; an attack far from 0.15 succeeds almost always
    searched: list[str] = []
    found = play(
        [0.10, 0.20],
        [0.15],
        lower_bound=0.0,
        upper_bound=0.10,
        attacker_oracle=study_oracle("attacker", 16, searched),
        defender_oracle=study_oracle("defender", 16, searched),
        measure=measure,
    )
    assert searched == ["attacker", "defender"]
    assert abs(found.attacker.strategy - 0.15) > 0.5  # far from the defense
    assert found.attacker.confirmed.mean > 0.95
    assert found.attacker.confirmed.low is not None and found.attacker.confirmed.low > 0.10
    assert found.attacker.beats_bound
    assert not found.defender.beats_bound  # the defense at ~0.15 was already its best
    assert not found.stands
    # paired over the confirmation seeds: ~1 against x, less the ~0.06 the defense concedes
    assert found.exploitability.mean == pytest.approx(0.94, abs=0.05)
    assert len(found.exploitability.values) == len(CONFIRM)


def test_a_value_whose_bounds_hold_stands() -> None:
    # bounds [0, 1] contain every payoff: no response can beat them by more than the noise
    found = play(
        [0.9],
        [0.15],
        lower_bound=0.0,
        upper_bound=1.0,
        attacker_oracle=study_oracle("attacker", 8, []),
        defender_oracle=study_oracle("defender", 8, []),
        measure=measure,
    )
    assert found.stands
    assert found.defender.confirmed.mean < 0.1  # the defense moved to cover 0.9
    assert abs(found.defender.strategy - 0.9) < 0.2


def test_a_defense_better_than_the_lower_bound_fails_the_value() -> None:
    # the duel believed no defense held the attack at 0.9 below 0.5; one at 0.9 holds it at 0
    found = play(
        [0.9],
        [0.15],
        lower_bound=0.5,
        upper_bound=1.0,
        attacker_oracle=study_oracle("attacker", 8, []),
        defender_oracle=study_oracle("defender", 16, []),
        measure=measure,
    )
    assert found.defender.beats_bound and not found.stands


def test_a_search_worse_than_the_duels_own_response_keeps_the_duels() -> None:
    # the duel's own attacker response (0.9, against the defense at 0.15) is far better than
    # what a 1-trial search finds; the audited attack is the duel's, confirmed on fresh seeds,
    # and the exploitability is not made smaller by the weaker search
    def weak(r: int, own: Sequence[float], opp: Sequence[float], mix: np.ndarray) -> Response:
        return Response(0.16, 0.05, "weak", 1)  # right on top of the defense

    known = Response(0.9, 0.99, "duel/r02/attacker", 0)
    found = play(
        [0.10],
        [0.15],
        lower_bound=0.0,
        upper_bound=0.99,
        attacker_oracle=weak,
        defender_oracle=study_oracle("defender", 4, []),
        measure=measure,
        known_attacker=known,
    )
    assert found.attacker.source == "duel" and found.attacker.strategy == 0.9
    assert found.attacker.study == "duel/r02/attacker"
    assert found.attacker.confirmed.mean > 0.9
    assert found.exploitability.mean > 0.5  # with the weak find alone it would be about 0
    assert found.defender.source in ("audit", "mix")

    # both searches weak: the strategies of the duel's own mixes are confirmed beside them, so
    # the audited exploitability cannot fall below 0 on average
    def far(r: int, own: Sequence[float], opp: Sequence[float], mix: np.ndarray) -> Response:
        return Response(0.95, 0.0, "weak", 1)  # nowhere near the attack at 0.10

    both = play(
        [0.10],
        [0.15],
        lower_bound=0.0,
        upper_bound=0.99,
        attacker_oracle=weak,
        defender_oracle=far,
        measure=measure,
    )
    assert both.attacker.source == "mix" and both.attacker.strategy == 0.10
    assert both.defender.source == "mix" and both.defender.strategy == 0.15
    assert both.exploitability.mean >= 0
    # a find better than the duel's response is kept as the audit's
    better = play(
        [0.10],
        [0.15],
        lower_bound=0.0,
        upper_bound=0.99,
        attacker_oracle=study_oracle("attacker", 16, []),
        defender_oracle=study_oracle("defender", 4, []),
        measure=measure,
        known_attacker=Response(0.16, 0.05, "duel/r02/attacker", 0),
    )
    assert better.attacker.source == "audit" and better.attacker.confirmed.mean > 0.9


def test_one_confirmation_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="two or more confirmation seeds"):
        play(
            [0.1],
            [0.1],
            lower_bound=0.0,
            upper_bound=1.0,
            attacker_oracle=study_oracle("attacker", 2, []),
            defender_oracle=study_oracle("defender", 2, []),
            measure=lambda side, s, o, w: [0.5],
        )


def test_t_interval() -> None:
    est = t_interval([0.2, 0.4])
    assert est.mean == pytest.approx(0.3)
    # t(0.975, 1) = 12.706; sd 0.1414 / sqrt(2) = 0.1
    assert est.high == pytest.approx(min(1.0, 0.3 + 1.2706)) and est.low == 0.0
    free = t_interval([0.2, 0.4, 0.3], clip=None)
    assert free.half_width == pytest.approx(4.3027 * 0.1 / np.sqrt(3), rel=1e-3)
    assert t_interval([0.5]).low is None
    with pytest.raises(ValueError):
        t_interval([])
