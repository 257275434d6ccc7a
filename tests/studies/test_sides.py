"""Strategies and their define-by-run spaces, through a real Optuna study."""

from __future__ import annotations

import optuna
import pytest

from arena.core.train import TrainConfig
from strategies.players import parse_attackers
from strategies.registry import UnknownStrategy
from studies.spaces import AttackerSpace, DefenderSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


def ask(space: AttackerSpace | DefenderSpace, seed: int = 0, n: int = 8) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        space.define(trial)
        out.append(dict(trial.params))
        study.tell(trial, 0.0)
    return out


@pytest.mark.parametrize("families", [["badnets"], ["tca"], ["badnets", "tca"]])
def test_attacker_params_round_trip(families: list[str]) -> None:
    space = AttackerSpace(families, num_classes=10)
    for params in ask(space):
        strategy = space.decode(params)
        assert strategy.family in families
        assert space.encode(strategy) == params
        assert ("family" in params) == (len(families) > 1)
        prefix = f"{strategy.family}."
        assert all(k.startswith((prefix, "train.", "family")) for k in params)


def test_attacker_defaults_and_identity() -> None:
    space = AttackerSpace(["badnets", "tca"], num_classes=10)
    defaults = space.defaults()
    assert [d.family for d in defaults] == ["badnets", "tca"]
    assert all(d.recipe == TrainConfig() for d in defaults)
    again = space.decode(space.encode(defaults[1]))
    assert again == defaults[1] and again.key == defaults[1].key
    assert hash(again) == hash(defaults[1])
    assert defaults[0].key != defaults[1].key
    assert defaults[1].label.startswith("tca#")


def test_enqueued_params_come_back_exactly() -> None:
    space = AttackerSpace(["tca"], num_classes=10)
    study = optuna.create_study()
    wanted = space.encode(space.defaults()[0])
    study.enqueue_trial(wanted)
    trial = study.ask()
    space.define(trial)
    assert space.decode(trial.params) == space.defaults()[0]


def test_defender_pipeline_space() -> None:
    space = DefenderSpace("strip+abs", num_classes=10)
    assert space.defaults()[0].family == "strip+abs"
    for params in ask(space, n=4):
        strategy = space.decode(params)
        assert [n for n, _ in strategy.stages] == ["strip", "abs"]
        assert space.encode(strategy) == params
    assert DefenderSpace("none", num_classes=10).encode(
        DefenderSpace("none", num_classes=10).defaults()[0]
    ) == {}


def test_bad_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownStrategy, match="known attacks:.*badnets"):
        parse_attackers("nope")
    assert parse_attackers("all") == sorted(parse_attackers("all"))
    assert parse_attackers("tca,badnets") == ["tca", "badnets"]
    with pytest.raises(UnknownStrategy, match="known defenses:.*strip"):
        DefenderSpace("strip+nope", num_classes=10)
    with pytest.raises(ValueError, match="join names"):
        DefenderSpace("strip+", num_classes=10)
    with pytest.raises(ValueError, match="twice"):
        DefenderSpace("strip+strip", num_classes=10)


def test_anchors_fix_the_attackers_recipes_only() -> None:
    space = AttackerSpace(["badnets", "tca"], num_classes=10)
    own = space.defaults()  # two families, one recipe
    anchors = space.anchors(own)
    assert len(anchors) == 1 and all(k.startswith("train.") for k in anchors[0])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.enqueue_trial(anchors[0])
    trial = study.ask()
    space.define(trial)
    assert space.decode(trial.params).recipe == TrainConfig()  # the recipe is held
    assert DefenderSpace("strip", num_classes=10).anchors([]) == []
