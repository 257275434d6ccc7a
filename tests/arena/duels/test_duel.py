"""A whole duel on tiny data: Ray Tune trials, Optuna storage, cache replay, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from arena.cell.provenance import SCHEMA_VERSION
from arena.cell.setting import Setting
from arena.data import DataRef
from arena.duels.run import DuelSpec, run_duel
from arena.game.budget import BUDGETS, Budget
from arena.report.duel import matrix_figure, write_report
from studies.oracle import DuelInterrupted, TuneOracle
from studies.spaces import AttackerSpace
from studies.storage import open_storage, study_name

KEYS = {
    "value",
    "value_ci",
    "lower_bound",
    "upper_bound",
    "exploitability",
    "rounds",
    "attacker_mix",
    "defender_mix",
    "payoff_matrix",
    "best_pure_defense",
    "trainings",
    "cache_hits",
    "seconds",
}
TINY = Budget(rounds=2, attacker_trials=2, defender_trials=2, epsilon=0.0, ci_seeds=2)


@pytest.fixture(scope="module")
def duel(ray_local: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("duel")
    setting = Setting(data=DataRef(limit=60), cache_url=str(root / "cache"))
    spec = DuelSpec("badnets", "strip", setting, TINY, seed=0)
    storage = f"sqlite:///{root / 'arena.db'}"
    first = run_duel(spec, storage_url=storage, out_dir=root / "out")
    again = run_duel(spec, storage_url=storage, out_dir=root / "again")
    return {"spec": spec, "storage": storage, "root": root, "first": first, "again": again}


def test_duel_json_has_every_key_and_consistent_numbers(duel: dict[str, Any]) -> None:
    r = duel["first"]
    assert set(r) >= KEYS
    assert json.loads((duel["root"] / "out" / "duel.json").read_text())["value"] == r["value"]
    assert r["lower_bound"] - 1e-9 <= r["value"] <= r["upper_bound"] + 1e-9
    assert r["exploitability"] == pytest.approx(r["upper_bound"] - r["lower_bound"])
    m = np.asarray(r["payoff_matrix"]["values"])
    assert m.shape == (len(r["payoff_matrix"]["attackers"]), len(r["payoff_matrix"]["defenders"]))
    assert ((m >= 0) & (m <= 1)).all()
    for side in ("attacker_mix", "defender_mix"):
        assert sum(e["weight"] for e in r[side]) == pytest.approx(1.0)
    assert {"family", "attack", "train"} <= set(r["attacker_mix"][0])
    assert "overlays" in r["defender_mix"][0]["stages"][0]["config"]
    assert r["best_pure_defense"]["worst_case"] >= r["value"] - 1e-9
    assert 1 <= len(r["rounds"]) <= TINY.rounds
    assert r["trainings"] >= 2  # the clean model and the default BadNet at least
    assert len(r["value_ci"]["values"]) == 2
    # where the numbers came from: the code, the libraries, the data's bytes, every seed
    assert r["schema_version"] == SCHEMA_VERSION
    prov = r["provenance"]
    assert prov["seeds"] == [0, *r["value_ci"]["seeds"]]
    assert prov["data"]["limit"] == 60 and len(prov["data"]["digest"]) == 64
    assert {"torch", "optuna", "ray"} <= set(prov["libraries"])


def test_storage_holds_one_study_per_side_and_round(duel: dict[str, Any]) -> None:
    storage = open_storage(duel["storage"])
    name = duel["spec"].name
    for r in duel["first"]["rounds"]:
        for side in ("attacker", "defender"):
            study = optuna.load_study(
                study_name=study_name(name, side, r["round"]), storage=storage
            )
            assert study.user_attrs["side"] == side and study.user_attrs["duel"] == name
            assert study.metric_names == ["post-defense attack success"]  # not "Objective 0"
            trials = study.get_trials(states=(TrialState.COMPLETE,))
            # attacker trials whose BadNet could not pass the gate were pruned (its curve kept)
            pruned = study.get_trials(states=(TrialState.PRUNED,))
            assert len(trials) + len(pruned) == study.user_attrs["planned_trials"] >= 2
            assert trials and (side == "attacker" or not pruned)
            for t in pruned:
                assert t.user_attrs["pruned"] and t.intermediate_values
            for t in trials:
                assert 0.0 <= t.value <= 1.0
                assert {"strategy", "ca", "asr", "payoffs"} <= set(t.user_attrs)
                assert len(t.system_attrs["constraints"]) == 2


def test_both_studies_of_a_round_share_one_tuner(duel: dict[str, Any]) -> None:
    """One Ray Tune experiment a round, holding both sides' trials (studies/searchers.py)."""
    name = duel["spec"].name
    experiments = sorted(p.name for p in (duel["root"] / "out" / "tune").iterdir() if p.is_dir())
    rounds = [r["round"] for r in duel["first"]["rounds"]]
    assert experiments == [
        "+".join(study_name(name, side, r).replace("/", "_") for side in ("attacker", "defender"))
        for r in rounds
    ]
    trials = duel["first"]["trials"]
    for r in rounds:  # each side's trials were told to its own study's oracle
        for side in ("attacker", "defender"):
            ours = [t for t in trials if t["round"] == r and t["side"] == side]
            assert ours and all(t["study"] == study_name(name, side, r) for t in ours)


def test_defender_trials_never_train_and_replay_trains_nothing(duel: dict[str, Any]) -> None:
    trials = duel["first"]["trials"]
    assert {t["side"] for t in trials} == {"attacker", "defender"}
    assert all(t["trained"] == 0 for t in trials if t["side"] == "defender")
    again = duel["again"]
    assert again["trainings"] == 0 and again["trials"] == []
    assert again["value"] == duel["first"]["value"]
    assert again["payoff_matrix"] == duel["first"]["payoff_matrix"]


def test_report_files(duel: dict[str, Any], tmp_path: Path) -> None:
    paths = write_report(duel["first"], tmp_path)
    assert [p.name for p in paths] == ["report.md", "payoff_matrix.png", "bounds.png"]
    assert "## Rounds" in paths[0].read_text()
    assert all(p.stat().st_size > 1000 for p in paths[1:])


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (8, 12)])
def test_the_heatmap_keeps_its_text_inside_and_fills_the_width(
    duel: dict[str, Any], shape: tuple[int, int]
) -> None:
    r = dict(duel["first"])
    rows, cols = shape
    r["payoff_matrix"] = {
        "attackers": [f"mtmta+long-label#{i:06x}" for i in range(rows)],
        "defenders": [f"strip+bdmae#{j:06x}" for j in range(cols)],
        "values": np.random.default_rng(0).uniform(size=shape).tolist(),
    }
    fig = matrix_figure(r)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    ax = fig.axes[0]
    texts = [fig._suptitle, ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(),
             *ax.get_yticklabels()]  # fmt: skip
    for text in texts:
        extent = text.get_window_extent(renderer)
        assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, text.get_text()
        assert box.y0 - 1 <= extent.y0 and extent.y1 <= box.y1 + 1, text.get_text()
    # the cells take the width the labels and the colour bar leave, not a square in the middle
    assert ax.get_window_extent(renderer).width > 0.45 * box.width
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_an_unfinished_study_needs_resume(tmp_path: Path) -> None:
    space = AttackerSpace(["badnets"], num_classes=10)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    oracle = TuneOracle(
        space, "d", Setting(), (0,), trials=2, storage_url=url, tune_dir=str(tmp_path)
    )
    study, remaining = oracle._prepare("d/r01/attacker", 1, space.defaults(), [])
    assert remaining == 3  # one warm start (the default) + two new trials
    done = study.ask()
    space.define(done)
    study.tell(done, 0.5)
    cut = study.ask()  # a trial that was running when the run stopped
    space.define(cut)
    with pytest.raises(DuelInterrupted, match="--resume"):
        oracle._prepare("d/r01/attacker", 1, space.defaults(), [])
    oracle.resume = True
    study, remaining = oracle._prepare("d/r01/attacker", 1, space.defaults(), [])
    assert remaining == 2
    states = [t.state for t in study.get_trials()]
    assert states[:2] == [TrialState.COMPLETE, TrialState.FAIL]
    assert states[-1] == TrialState.WAITING  # the cut trial's parameters, queued again
    assert study.get_trials()[-1].system_attrs["fixed_params"] == cut.params


def test_budget_presets_grow() -> None:
    q, d, t = (BUDGETS[k] for k in ("quick", "default", "thorough"))
    assert q.rounds < d.rounds < t.rounds and q.attacker_trials < d.attacker_trials
    with pytest.raises(ValueError, match="--rounds"):
        Budget(rounds=0, attacker_trials=1, defender_trials=1, epsilon=0.0)


def test_the_defender_may_choose_its_defense(ray_local: Any, tmp_path: Path) -> None:
    setting = Setting(data=DataRef(limit=60), cache_url=str(tmp_path / "cache"))
    budget = Budget(rounds=1, attacker_trials=1, defender_trials=2, epsilon=0.0, ci_seeds=0)
    spec = DuelSpec("badnets", "strip, fine-pruning", setting, budget, seed=0)
    storage = f"sqlite:///{tmp_path / 'arena.db'}"
    result = run_duel(spec, storage_url=storage, out_dir=tmp_path / "out")
    # both choices' defaults start the game; the defender's study chooses among them
    families = [label.split("#")[0] for label in result["payoff_matrix"]["defenders"]]
    assert families[:2] == ["strip", "fine-pruning"]
    study = optuna.load_study(
        study_name=study_name(result["duel"]["name"], "defender", 1), storage=storage
    )
    chosen = [t.params["defense"] for t in study.trials if t.state == TrialState.COMPLETE]
    assert chosen and set(chosen) <= {"strip", "fine-pruning"}
    assert set(result["duel"]["versions"]["defenses"]) == {"strip", "fine-pruning"}
    assert {e["family"] for e in result["defender_mix"]} <= {"strip", "fine-pruning"}
