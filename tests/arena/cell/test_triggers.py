"""Cells of multi-trigger attacks scored by the trigger the attacker would deploy, and flags
told apart by whether they name the attack's target."""

from __future__ import annotations

import pytest
import torch

from arena.cell.play import evaluate
from arena.cell.result import CellResult, Detection, GateRecord
from arena.cell.rules import Metrics, best_trigger, measure_each, score
from arena.cell.setting import Gates, Setting
from arena.core.cache import ArtifactCache
from arena.core.train import TrainConfig
from arena.data import DataRef, Split
from arena.models import build_model
from strategies import attack_class
from strategies.attacks.badnets import BadNetsConfig
from strategies.defenses.base import Deployment
from strategies.players import AttackerStrategy, DefenderStrategy


def _metrics(asr: float, sasr: float) -> Metrics:
    return Metrics(ca=0.97, asr=asr, sda=0.96, sasr=sasr, far=sasr, frr=0.01)


def _scored(*pairs: tuple[float, float], flagged: bool = False) -> dict:
    out = {}
    for i, (asr, sasr) in enumerate(pairs):
        m = _metrics(asr, sasr)
        out[f"t{i}"] = (m, score(m, clean_ca=0.98, flagged=flagged, clean_flagged=False,
                                 gates=Gates()))  # fmt: skip
    return out


def test_the_best_trigger_is_the_highest_payoff_then_sasr_then_asr_then_the_first() -> None:
    assert best_trigger(_scored((0.9, 0.2), (0.8, 0.6), (0.99, 0.5))) == "t1"
    # flagged: every trigger pays 0; the one whose success survives best is still named
    assert best_trigger(_scored((0.9, 0.2), (0.8, 0.6), flagged=True)) == "t1"
    assert best_trigger(_scored((0.7, 0.5), (0.9, 0.5))) == "t1"
    assert best_trigger(_scored((0.9, 0.5), (0.9, 0.5))) == "t0"


def test_measure_each_shares_the_clean_figures_and_skips_an_empty_set() -> None:
    gen = torch.Generator().manual_seed(0)
    net = build_model("small-cnn", (3, 16, 16), 10).eval()
    test = Split(torch.rand(20, 3, 16, 16, generator=gen), torch.arange(20) % 10)
    hit = Split(test.x[:6], torch.zeros(6, dtype=torch.long))
    empty = Split(test.x[:0], test.y[:0])
    each = measure_each(net, Deployment(net), test, {"a": hit, "b": empty, "c": test})
    assert each["b"] is None
    a, c = each["a"], each["c"]
    assert a is not None and c is not None
    assert (a.ca, a.sda, a.frr) == (c.ca, c.sda, c.frr) and a.far == 1.0
    predicted = net(hit.x).argmax(1)
    assert a.asr == pytest.approx(float((predicted == 0).float().mean()))


@pytest.mark.parametrize(
    ("badnet", "named", "targets", "expected"),
    [
        (True, [3], {3}, True),
        (True, [2, 3], {3}, True),
        (True, [5], {3}, False),
        (True, None, {3}, None),  # the defense names no label
        (False, [3], {3}, None),  # no flag, nothing to judge
        (None, None, {3}, None),
    ],
)
def test_a_flag_is_told_apart_by_the_label_it_names(
    badnet: bool | None, named: list[int] | None, targets: set[int], expected: bool | None
) -> None:
    detection = Detection.of(badnet, False, named=named, targets=targets)
    assert detection.target_named is expected
    assert detection.outcome == (None if badnet is None else ("TP" if badnet else "FN"))


@pytest.mark.parametrize(
    ("family", "changes", "targets"),
    [
        ("badnets", {"target": 3}, {3}),
        ("badnets", {"target": 3, "mapping": "multi-target"}, {3, 4, 5}),
        ("badnets", {"mapping": "all-to-all"}, set(range(10))),
        ("mtsta", {}, {4}),
        ("mtmta", {}, {1, 5, 8}),
    ],
)
def test_target_labels(family: str, changes: dict, targets: set[int]) -> None:
    cls = attack_class(family)
    config = cls.config_cls(**changes) if changes else cls.config_cls()
    attack = cls(config, image_shape=(3, 16, 16), num_classes=10)
    assert attack.target_labels() == targets


def test_a_single_trigger_attack_has_one_set_under_its_name() -> None:
    attack = attack_class("badnets")(BadNetsConfig(), image_shape=(3, 16, 16), num_classes=10)
    test = Split(torch.rand(20, 3, 16, 16), torch.arange(20) % 10)
    sets = attack.poisoned_tests(test, torch.Generator().manual_seed(1))
    assert list(sets) == ["badnets"]
    single = attack.poisoned_test(test, torch.Generator().manual_seed(1))
    assert torch.equal(sets["badnets"].x, single.x) and torch.equal(sets["badnets"].y, single.y)


def test_a_multi_trigger_cell_is_its_best_triggers(tmp_path, one_thread: None) -> None:
    attacker = AttackerStrategy.of("mtsta", recipe=TrainConfig(epochs=3))
    cell = evaluate(
        attacker,
        DefenderStrategy.of("none"),
        # a tiny BadNet: the user's gate is opened, so that the cell scores its triggers
        Setting(data=DataRef(limit=150), gates=Gates(delta_attack=1.0)),
        cache=ArtifactCache(str(tmp_path)),
    )
    assert cell.gates.decided_by is None
    assert cell.triggers == ["lipstick", "eyebrow", "sunglasses"]
    assert len(cell.asr_per_trigger) == len(cell.sasr_per_trigger) == 3
    best = max(range(3), key=lambda i: (cell.sasr_per_trigger[i], cell.asr_per_trigger[i], -i))
    assert cell.payoff == cell.sasr == cell.sasr_per_trigger[best]
    assert cell.asr == cell.asr_per_trigger[best]
    assert cell.to_json()["asr_per_trigger"] == cell.asr_per_trigger


def test_the_table_shows_each_trigger_and_whom_a_flag_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from arena.report.cell import print_cell

    cell = CellResult(
        ca=0.97, asr=0.99, sda=0.97, sasr=0.99, far=1.0, frr=0.0,
        detection=Detection.of(True, False, named=[7], targets={4}),
        payoff=0.0,
        gates=GateRecord(None, ["BadNet flagged: not deployed"], 0.98, "ok",
                         {"clean_model": True, "badnet": True}, 0.03, 0.05, 0.05),
        seconds={"total": 1.0},
        triggers=["lipstick", "eyebrow"], asr_per_trigger=[0.9, 0.99],
        sasr_per_trigger=[0.9, 0.99],
    )  # fmt: skip
    print_cell("mtsta", "abs", cell)
    out = capsys.readouterr().out
    assert "lipstick 90.0% / 90.0%, eyebrow 99.0% / 99.0%" in " ".join(out.split())
    assert "BadNet flagged (TP, naming another label)" in out
    assert "payoff 0.000" in out
