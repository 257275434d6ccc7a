"""The payoff rules (known answers) and whole cells on digits."""

from __future__ import annotations

import pytest

from arena.cache import ArtifactCache
from arena.evaluate import DataRef, Gates, evaluate, score
from arena.train import TrainConfig

KEYS = {"ca", "asr", "sda", "sasr", "far", "frr", "detection", "payoff", "gates", "seconds"}
BASE = dict(clean_ca=0.98, ca=0.97, asr=0.95, sda=0.96, sasr=0.30, frr=0.01, far=0.3,
            flagged=None, clean_flagged=None, gates=Gates())


def play(**changes: object) -> tuple[float, dict]:
    return score(**{**BASE, **changes})  # type: ignore[arg-type]


def test_unflagged_cell_scores_surviving_attack_success() -> None:
    payoff, gate = play()
    assert payoff == 0.30 and gate["decided_by"] is None


def test_user_gate_rejects_an_inaccurate_badnet() -> None:
    payoff, gate = play(ca=0.94)
    assert payoff == 0.0 and gate["decided_by"] == "user"


@pytest.mark.parametrize(
    "change", [{"sda": 0.90}, {"frr": 0.06}, {"clean_flagged": True, "flagged": True}]
)
def test_defender_gate_scores_as_if_no_defense_ran(change: dict) -> None:
    payoff, gate = play(**change)
    assert payoff == 0.95 and gate["decided_by"] == "defense"


def test_flagged_badnet_is_not_deployed() -> None:
    payoff, gate = play(flagged=True, clean_flagged=False)
    assert payoff == 0.0 and gate["decided_by"] is None


def test_cell_keys_and_cache_hits(tmp_path) -> None:
    cache = ArtifactCache(str(tmp_path))
    kw = dict(data_ref=DataRef(limit=150), recipe=TrainConfig(epochs=3), cache=cache)
    first = evaluate("badnets", "strip", **kw)  # type: ignore[arg-type]
    assert set(first.to_json()) == KEYS
    assert first.gates["cached"] == {"clean_model": False, "badnet": False}
    second = evaluate("badnets", "strip", **kw)  # type: ignore[arg-type]
    assert second.gates["cached"] == {"clean_model": True, "badnet": True}
    assert second.to_json()["payoff"] == first.to_json()["payoff"]


@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory) -> ArtifactCache:
    return ArtifactCache(str(tmp_path_factory.mktemp("cache")))


@pytest.mark.slow
def test_badnets_against_none_and_strip_on_digits(digits_cache: ArtifactCache) -> None:
    none = evaluate("badnets", "none", cache=digits_cache)
    assert none.ca >= 0.90 and none.asr >= 0.90 and none.payoff == none.asr
    strip = evaluate("badnets", "strip", cache=digits_cache)
    assert strip.payoff < 0.2 and strip.frr <= 0.05
    assert strip.gates["decided_by"] is None


@pytest.mark.slow
def test_abs_flags_the_badnet_and_not_the_clean_model(digits_cache: ArtifactCache) -> None:
    result = evaluate("badnets", "abs", cache=digits_cache)
    assert result.detection["badnet"] is True and result.detection["outcome"] == "TP"
    assert result.detection["clean"] is False and result.detection["clean_outcome"] == "TN"
    assert result.payoff == 0.0
