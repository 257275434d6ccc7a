"""Pruned attacker trials: watched BadNets are the unwatched ones, a stopped BadNet is never
cached, and a pruned trial is stored as such and never enters the payoff matrix."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from optuna.trial import TrialState

from arena.cell.play import score_cell
from arena.cell.pruning import GateRule, watching
from arena.cell.setting import Setting
from arena.core.cache import ArtifactCache
from arena.core.train import TrainConfig
from arena.data import DataRef
from strategies.players import AttackerStrategy, DefenderStrategy
from studies.scoring import TrialJob, score_trial
from studies.spaces import AttackerSpace
from studies.storage import open_storage

RECIPE = TrainConfig(epochs=5)


def _setting(root: Path) -> Setting:
    return Setting(data=DataRef(limit=60), cache_url=str(root / "cache"))


def _weights(root: Path, kind: str) -> list[dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    return [load_file(p) for p in sorted((root / "cache" / kind).glob("*/*.safetensors"))]


def test_a_watched_badnet_is_the_one_trained_unwatched(tmp_path: Path) -> None:
    attacker = AttackerStrategy.of("badnets", recipe=RECIPE)
    none = DefenderStrategy.of("none")
    plain = score_cell(
        attacker, none, 0, _setting(tmp_path / "a"), ArtifactCache(str(tmp_path / "a" / "cache"))
    )
    with watching() as watch:
        watched = score_cell(
            attacker,
            none,
            0,
            _setting(tmp_path / "b"),
            ArtifactCache(str(tmp_path / "b" / "cache")),
        )
    assert [row[0] for row in watch.curve] == list(range(1, RECIPE.epochs + 1))
    assert watch.threshold is not None and 0.0 < watch.threshold < 1.0
    # the last point of the curve is the BadNet's clean accuracy as the cell measures it
    assert watch.curve[-1][1] == pytest.approx(watched.ca, abs=1e-4)
    assert watched.payoff == plain.payoff and watched.ca == plain.ca
    (a,), (b,) = _weights(tmp_path / "a", "badnet"), _weights(tmp_path / "b", "badnet")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_rule_stops_a_badnet_that_cannot_pass_the_gate_and_caches_nothing(
    tmp_path: Path,
) -> None:
    setting = _setting(tmp_path)
    space = AttackerSpace(["badnets"], num_classes=10)
    # a learning rate that leaves the network at chance for many epochs
    hopeless = AttackerStrategy.of("badnets", recipe=replace(RECIPE, epochs=10, lr=1e-6))
    job = TrialJob(space, (DefenderStrategy.of("none"),), (1.0,), (0,), setting, GateRule())
    result = score_trial(space.encode(hopeless), job)
    assert result["objective"] is None and "below the gate" in result["pruned"]
    epochs = [row[0] for row in result["curve"]]
    assert epochs == list(range(1, len(epochs) + 1)) and 2 <= len(epochs) < 10
    assert result["gate_threshold"] is not None
    assert not (tmp_path / "cache" / "badnet").exists()  # a stopped BadNet is not kept
    # without the rule, the same trial runs to the end and is scored
    done = score_trial(space.encode(hopeless), replace(job, prune=None))
    assert done["objective"] == 0.0 and len(done["curve"]) == 10 and "pruned" not in done


def test_a_rule_needs_a_share_of_the_epochs_and_a_margin() -> None:
    with pytest.raises(ValueError, match="0 < after <= 1"):
        GateRule(after=0.0)
    rule = GateRule(after=0.5, margin=0.1)
    assert not rule.stops(2, 10, 0.0, 0.9)  # too early
    assert rule.stops(5, 10, 0.7, 0.9) and not rule.stops(5, 10, 0.85, 0.9)
    assert not rule.stops(10, 10, 0.0, 0.9)  # the last epoch: the BadNet is done anyway


# the setup of ops.driver_script(PRUNE_NEW, "prune_every_new_attacker_trial")
PRUNE_NEW = """
def prune_every_new_attacker_trial() -> None:
    '''In every Ray worker: an attacker trial that is not a warm start is pruned.'''
    import studies.scoring as scoring
    from strategies.players import AttackerStrategy

    score = scoring.score_trial

    def pruning(params, job):
        strategy = job.space.decode(params)
        if isinstance(strategy, AttackerStrategy) and strategy != AttackerStrategy.of(
            strategy.family
        ):
            return {"objective": None, "pruned": "stopped by the test", "strategy": strategy.label,
                    "curve": [[1, 0.1, 0.0], [2, 0.12, 0.0]], "gate_threshold": 0.9,
                    "trained": 0, "cache_hits": 0, "inner_seconds": 0.0}
        return score(params, job)

    scoring.score_trial = pruning

"""


def test_a_pruned_trial_is_stored_as_pruned_and_never_enters_the_payoff_matrix(
    reference_duel: Any, ray_env: dict[str, str], ops: Any, tmp_path: Path
) -> None:
    shutil.copytree(reference_duel.cache, tmp_path / "cache")
    done = ops.run_python(
        ops.driver_script(PRUNE_NEW, "prune_every_new_attacker_trial"),
        [str(tmp_path / "unused"), *reference_duel.argv(tmp_path)],
        ray_env,
        tmp_path,
    )
    result = ops.duel_json(done)
    storage = open_storage(f"sqlite:///{tmp_path / 'arena.db'}", create=False)
    pruned: list[str] = []
    for study in storage.get_all_studies():
        if study.user_attrs.get("side") != "attacker":
            continue
        trials = storage.get_all_trials(study._study_id)
        states = [t.state for t in trials]
        # the warm start (the default BadNets) completes; every new trial is pruned
        assert states.count(TrialState.COMPLETE) == study.user_attrs["warm_start"]
        assert states.count(TrialState.PRUNED) == len(trials) - study.user_attrs["warm_start"]
        for t in trials:
            if t.state == TrialState.PRUNED:
                assert t.intermediate_values == {1: 0.1, 2: 0.12}  # its curve, for the dashboard
                assert t.user_attrs["pruned"] == "stopped by the test"
                pruned.append(t.user_attrs["strategy"])
    assert pruned
    played = set(result["payoff_matrix"]["attackers"]) | {
        e["strategy"] for e in result["attacker_mix"]
    }
    assert not played & set(pruned)
    assert "pruned: stopped by the test" in done.stderr
