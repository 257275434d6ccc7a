"""Strategies and their define-by-run spaces, through a real Optuna study."""

from __future__ import annotations

import optuna
import pytest

from arena.core.train import TrainConfig
from strategies.players import parse_attackers, parse_defenders
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


@pytest.mark.parametrize("choices", [["strip", "abs", "strip+bdmae"], ["fine-pruning", "none"]])
def test_the_defender_chooses_among_defenses_and_pipelines(choices: list[str]) -> None:
    space = DefenderSpace(choices, num_classes=10)
    assert [d.family for d in space.defaults()] == choices  # each choice's default starts
    seen = set()
    for params in ask(space, n=12):
        strategy = space.decode(params)
        assert params["defense"] == strategy.family in choices
        assert space.encode(strategy) == params
        stages = [n for n, _ in strategy.stages]
        assert all(k == "defense" or k.split(".")[0] in stages for k in params)
        seen.add(strategy.family)
    assert len(seen) > 1


def test_all_defenders_are_every_defense_and_every_valid_pair() -> None:
    from strategies import DEFENSES
    from strategies.defenses import parse_defenses

    every = parse_defenders("all")
    singles = [d for d in every if "+" not in d]
    assert singles == sorted(set(DEFENSES) - {"none"})
    pairs = [d for d in every if "+" in d]
    assert "strip+bdmae" in pairs and "bdmae+strip" not in pairs and "abs+strip" not in pairs
    assert "abs+neural-cleanse" in pairs and "neural-cleanse+abs" not in pairs  # one verdict
    assert "bdmae+februus" in pairs and "februus+bdmae" in pairs  # two different systems
    for pair in pairs:
        assert parse_defenses(pair) == pair.split("+")  # valid, in the order given
    space = DefenderSpace(every, num_classes=10)
    assert [d.family for d in space.defaults()] == singles  # the pipelines are for the studies
    assert {space.decode(p).family for p in ask(space, n=40)} & set(pairs)
    assert parse_defenders(" strip + bdmae ,abs") == ["strip+bdmae", "abs"]
    with pytest.raises(ValueError, match="lists strip twice"):
        parse_defenders("strip,abs,strip")
    with pytest.raises(UnknownStrategy, match="known defenses:.*strip"):
        parse_defenders("strip,nope")
    with pytest.raises(ValueError, match="puts filter strip after purifier bdmae"):
        parse_defenders("abs,bdmae+strip")


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
