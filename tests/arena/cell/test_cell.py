"""The payoff rules (known answers) and whole cells on digits."""

from __future__ import annotations

import pytest

from arena.cell.play import evaluate
from arena.cell.result import CELL_KEYS
from arena.cell.rules import Metrics, Ruling, score
from arena.cell.setting import Gates, Setting
from arena.core.cache import ArtifactCache
from arena.core.train import TrainConfig
from arena.data import DataRef
from strategies.players import AttackerStrategy, DefenderStrategy

# the public keys of `arena evaluate --json`, written out once: the contract
KEYS = {"ca", "asr", "sda", "sasr", "far", "frr", "detection", "payoff", "gates", "seconds",
        "cpu_seconds", "triggers", "asr_per_trigger", "sasr_per_trigger", "far_per_trigger",
        "artifacts"}
BASE = dict(ca=0.97, asr=0.95, sda=0.96, sasr=0.30, frr=0.01, far=0.3)


def play(
    clean_ca: float = 0.98,
    flagged: bool | None = None,
    clean_flagged: bool | None = None,
    **changes: float,
) -> Ruling:
    return score(
        Metrics(**{**BASE, **changes}),
        clean_ca=clean_ca,
        flagged=flagged,
        clean_flagged=clean_flagged,
        gates=Gates(),
    )


def test_unflagged_cell_scores_surviving_attack_success() -> None:
    ruling = play()
    assert ruling.payoff == 0.30 and ruling.decided_by is None


def test_user_gate_rejects_an_inaccurate_badnet() -> None:
    ruling = play(ca=0.94)
    assert ruling.payoff == 0.0 and ruling.decided_by == "user"
    assert "below 0.980" in ruling.reasons[0]


@pytest.mark.parametrize(
    "change", [{"sda": 0.90}, {"frr": 0.06}, {"clean_flagged": True, "flagged": True}]
)
def test_defender_gate_scores_as_if_no_defense_ran(change: dict) -> None:
    ruling = play(**change)
    assert ruling.payoff == 0.95 and ruling.decided_by == "defense"


def test_flagged_badnet_is_not_deployed() -> None:
    ruling = play(flagged=True, clean_flagged=False)
    assert ruling.payoff == 0.0 and ruling.decided_by is None


def badnets(defender: str) -> tuple[AttackerStrategy, DefenderStrategy]:
    return AttackerStrategy.of("badnets", recipe=TrainConfig(epochs=3)), DefenderStrategy.of(
        defender
    )


def test_cell_keys_and_cache_hits(tmp_path) -> None:
    cache = ArtifactCache(str(tmp_path))
    setting = Setting(data=DataRef(limit=150))
    first = evaluate(*badnets("strip"), setting, cache=cache)
    assert set(first.to_json()) == KEYS == set(CELL_KEYS)
    assert first.gates.cached == {"clean_model": False, "badnet": False}
    assert first.trained == 2
    second = evaluate(*badnets("strip"), setting, cache=cache)
    assert second.gates.cached == {"clean_model": True, "badnet": True}
    assert second.trained == 0
    assert second.to_json()["payoff"] == first.to_json()["payoff"]


def test_a_cell_record_reads_back_as_the_same_result(tmp_path) -> None:
    from arena.cell.result import CellResult

    cell = evaluate(*badnets("strip"), Setting(data=DataRef(limit=150)),
                    cache=ArtifactCache(str(tmp_path)))
    again = CellResult.from_json(cell.to_json(), cached=True)
    assert again.to_json() == cell.to_json() and again.cached


@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory) -> ArtifactCache:
    return ArtifactCache(str(tmp_path_factory.mktemp("cache")))


def default(attacker: str, defender: str, cache: ArtifactCache):  # type: ignore[no-untyped-def]
    return evaluate(AttackerStrategy.of(attacker), DefenderStrategy.of(defender), cache=cache)


@pytest.mark.slow
def test_badnets_against_none_and_strip_on_digits(digits_cache: ArtifactCache) -> None:
    none = default("badnets", "none", digits_cache)
    assert none.ca >= 0.90 and none.asr >= 0.90 and none.payoff == none.asr
    strip = default("badnets", "strip", digits_cache)
    assert strip.payoff < 0.2 and strip.frr is not None and strip.frr <= 0.05
    assert strip.gates.decided_by is None


@pytest.mark.slow
def test_abs_flags_the_badnet_and_not_the_clean_model(digits_cache: ArtifactCache) -> None:
    result = default("badnets", "abs", digits_cache)
    assert result.detection.badnet is True and result.detection.outcome == "TP"
    assert result.detection.target_named is True  # it names the BadNet's target
    assert result.detection.clean is False and result.detection.clean_outcome == "TN"
    assert result.payoff == 0.0


def test_training_memory_is_estimated_without_allocating_and_checked_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    import arena.cell.play as play
    from arena.core.train import training_bytes
    from arena.models import build_model

    with torch.device("meta"):
        net = build_model("small-cnn", (3, 16, 16), 10)
    small = training_bytes(net, (3, 16, 16), 64)
    assert training_bytes(net, (3, 16, 16), 128) > small > 16 * sum(
        p.numel() for p in net.parameters()
    )
    setting = Setting(data=DataRef(limit=150))
    monkeypatch.setattr(play, "available_memory", lambda: 2**40)
    play.check_memory_for_training(setting, 64)
    monkeypatch.setattr(play, "available_memory", lambda: 2**20)  # 1 MiB free
    with pytest.raises(ValueError, match=r"small-cnn on 3x16x16 .*batches of 64 .*-T batch_size"):
        play.check_memory_for_training(setting, 64)
    with pytest.raises(ValueError, match="more than half"):
        evaluate(*badnets("strip"), setting, cache=ArtifactCache("memory://unused"))
