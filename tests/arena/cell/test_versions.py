"""Versioned artifacts: a changed strategy, trainer, data, architecture or payoff rule never
replays a model, part, verdict or cell that the old code made, and a duel that plays it gets a
new name."""

from __future__ import annotations

from pathlib import Path

import pytest

import arena.cell.artifacts as artifacts
import arena.cell.setting as setting_module
from arena.cell import rules
from arena.cell.artifacts import train_model
from arena.cell.play import cell_key
from arena.cell.setting import Setting, code_versions
from arena.core.cache import ArtifactCache
from arena.core.train import TrainConfig
from arena.data import DataRef
from arena.duels.run import DuelSpec
from arena.game.budget import Budget
from strategies import ATTACKS, DEFENSES, attack_class, defense_class
from strategies.defenses import Pipeline
from strategies.players import AttackerStrategy, DefenderStrategy

SETTING = Setting(data=DataRef(limit=40))
RECIPE = TrainConfig(epochs=1)


@pytest.mark.parametrize(
    "cls", [*(attack_class(n) for n in ATTACKS), *(defense_class(n) for n in DEFENSES), Pipeline]
)
def test_every_strategy_declares_its_own_version(cls: type) -> None:
    assert "version" in vars(cls), f"{cls.__name__} inherits its version instead of declaring it"
    assert isinstance(cls.version, int) and cls.version >= 1


def _keys() -> dict[str, str]:
    attacker = AttackerStrategy.of("badnets", recipe=RECIPE)
    defender = DefenderStrategy.of("strip+fine-pruning")
    spec = DuelSpec("badnets", "strip+fine-pruning", SETTING, Budget(1, 1, 1, 0.0))
    return {
        "attacker": attacker.key,
        "defender": defender.key,
        "cell": cell_key(attacker, defender, 0, SETTING),
        "duel": spec.name,
    }


@pytest.mark.parametrize(
    ("bump", "changed"),
    [
        ("badnets", {"attacker", "cell", "duel"}),
        ("strip", {"defender", "cell", "duel"}),
        ("pipeline", {"defender", "cell", "duel"}),
        ("rules", {"cell", "duel"}),
        ("trainer", {"cell", "duel"}),
        ("data", {"cell", "duel"}),
    ],
)
def test_a_bumped_version_changes_exactly_the_keys_it_should(
    bump: str, changed: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _keys()
    if bump == "badnets":
        monkeypatch.setattr(attack_class("badnets"), "version", 2)
    elif bump in ("strip", "pipeline"):
        cls = Pipeline if bump == "pipeline" else defense_class(bump)
        monkeypatch.setattr(cls, "version", cls.version + 1)
    elif bump == "rules":
        monkeypatch.setattr("arena.cell.play.RULES_VERSION", rules.VERSION + 1)
        monkeypatch.setattr("arena.duels.run.RULES_VERSION", rules.VERSION + 1)
    else:
        bumped = {**code_versions(), bump: code_versions()[bump] + 1}
        monkeypatch.setattr(setting_module, "code_versions", lambda: bumped)
    after = _keys()
    assert {k for k in before if before[k] != after[k]} == changed


def test_a_bumped_attack_or_trainer_retrains_instead_of_replaying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: None
) -> None:
    cache = ArtifactCache(str(tmp_path / "cache"))
    attack = AttackerStrategy.of("badnets", recipe=RECIPE)
    data = SETTING.splits()

    def badnet() -> artifacts.Trained:
        built = attack.build(image_shape=data.image_shape, num_classes=data.num_classes)
        return train_model(SETTING, 0, cache, recipe=RECIPE, attack=built)

    first = badnet()
    assert not first.cached and first.header["versions"]["attack"] == 1
    assert badnet().cached  # the same code replays it
    monkeypatch.setattr(attack_class("badnets"), "version", 2)
    second = badnet()
    assert not second.cached and second.key != first.key
    assert second.header["versions"]["attack"] == 2
    clean = train_model(SETTING, 0, cache, recipe=RECIPE)
    bumped = {**code_versions(), "trainer": code_versions()["trainer"] + 1}
    monkeypatch.setattr(artifacts, "code_versions", lambda: bumped)
    again = train_model(SETTING, 0, cache, recipe=RECIPE)
    assert not again.cached and again.key != clean.key
