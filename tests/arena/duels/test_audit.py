"""The audit of the reference duel: its studies, its seeds, its record, its replay, its plan."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from arena.cli.app import main
from arena.core.cache import ArtifactCache
from arena.duels.audit import (
    CONFIRM_SEED_OFFSET,
    SEARCH_SEED_OFFSET,
    AuditError,
    AuditSpec,
    audit_study_name,
    final_mixes,
    known_response,
    load_duel,
    run_audit,
)
from arena.duels.interval import CI_SEED_OFFSET
from arena.report.duel import markdown
from studies.spaces import AttackerSpace, DefenderSpace
from studies.storage import open_storage, sqlite_path

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.fixture(scope="module")
def audited(reference_duel: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The reference duel audited with one trial a side, in a copy of its storage and cache
    (other tests count the reference storage's studies)."""
    root = tmp_path_factory.mktemp("audit")
    shutil.copy(sqlite_path(reference_duel.storage) or "", root / "arena.db")
    shutil.copytree(reference_duel.cache, root / "cache")
    storage = f"sqlite:///{root / 'arena.db'}"
    out = root / "out"
    out.mkdir()
    result = copy.deepcopy(reference_duel.result)
    result["duel"]["cache"] = str(root / "cache")
    spec = AuditSpec(trials=1, confirm_seeds=2)
    first = run_audit(result, spec, storage_url=storage, out_dir=out)
    replay = run_audit(copy.deepcopy(result), spec, storage_url=storage, out_dir=out)
    return {"root": root, "storage": storage, "out": out, "result": result, "first": first,
            "replay": replay}  # fmt: skip


def test_the_audit_record(audited: dict[str, Any]) -> None:
    a, r = audited["first"], audited["result"]
    assert a["sampler"] == "qmc"
    assert a["trials"] == {"attacker": 1, "defender": 1}
    # the cells that confirmed the responses, listed so that `arena cache prune` keeps them
    cache = ArtifactCache(str(audited["root"] / "cache"))
    assert a["cells"] and all(cache.load_json("cell", k) is not None for k in a["cells"])
    seed = r["duel"]["seed"]
    assert a["search_seeds"] == [seed + SEARCH_SEED_OFFSET]
    assert a["confirmation_seeds"] == [seed + CONFIRM_SEED_OFFSET, seed + CONFIRM_SEED_OFFSET + 1]
    played = {seed, *r["value_ci"]["seeds"]}  # the audit plays none of the duel's seeds
    assert not played & {*a["search_seeds"], *a["confirmation_seeds"]}
    assert all(s >= seed + CI_SEED_OFFSET for s in r["value_ci"]["seeds"])
    assert a["attacker"]["bound"] == r["upper_bound"]
    assert a["defender"]["bound"] == r["lower_bound"]
    for side in ("attacker", "defender"):
        assert a[side]["source"] in ("audit", "duel", "mix")
        if a[side]["source"] == "duel":  # the duel's last-round response, kept as the better
            assert a[side]["study"] == r["rounds"][-1][f"{side}_study"]
        c = a[side]["confirmed"]
        assert len(c["values"]) == 2 and c["low"] <= c["mean"] <= c["high"]
    paired = [u - d for u, d in zip(a["attacker"]["confirmed"]["values"],
                                    a["defender"]["confirmed"]["values"], strict=True)]  # fmt: skip
    assert a["exploitability"]["values"] == pytest.approx(paired)
    beats = a["attacker"]["confirmed"]["low"] > r["upper_bound"]
    assert a["attacker"]["beats_bound"] == beats
    assert a["stands"] == (not a["attacker"]["beats_bound"] and not a["defender"]["beats_bound"])
    on_disk = json.loads((audited["out"] / "duel.json").read_text())
    assert on_disk["audit"]["attacker"]["strategy"] == a["attacker"]["strategy"]
    assert on_disk["value"] == r["value"]  # the duel's own figures are untouched
    assert a["provenance"]["seeds"] == [*a["search_seeds"], *a["confirmation_seeds"]]
    assert on_disk["audit"]["schema_version"] == on_disk["schema_version"]


def test_the_audit_studies_are_independent_of_the_duel(audited: dict[str, Any]) -> None:
    storage = open_storage(audited["storage"])
    name = audited["result"]["duel"]["name"]
    for side in ("attacker", "defender"):
        study = optuna.load_study(study_name=audit_study_name(name, side), storage=storage)
        assert study.user_attrs["sampler"] == "qmc"
        assert study.user_attrs["warm_start"] == 0  # no strategy of the duel's enqueued
        complete = study.get_trials(states=(TrialState.COMPLETE,))
        assert len(complete) == 1
        assert audited["first"][side]["study"] == study.study_name
    assert isinstance(
        optuna.load_study(study_name=audit_study_name(name, "attacker"), storage=storage).sampler,
        optuna.samplers.BaseSampler,
    )


def test_a_second_audit_replays_from_storage_and_cache(audited: dict[str, Any]) -> None:
    first, replay = audited["first"], audited["replay"]
    assert replay["trainings"] == 0
    assert replay["attacker"]["confirmed"] == first["attacker"]["confirmed"]
    assert replay["defender"]["strategy"] == first["defender"]["strategy"]


def test_a_larger_audit_continues_the_search(audited: dict[str, Any]) -> None:
    storage = open_storage(audited["storage"])
    name = audited["result"]["duel"]["name"]
    result = copy.deepcopy(audited["result"])
    run_audit(result, AuditSpec(trials=2, confirm_seeds=2), storage_url=audited["storage"],
              out_dir=audited["out"])  # fmt: skip
    study = optuna.load_study(study_name=audit_study_name(name, "defender"), storage=storage)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2


def test_the_report_states_the_verdict(audited: dict[str, Any]) -> None:
    text = markdown({**audited["result"], "audit": audited["first"]})
    assert "## Audit" in text
    assert "Audited exploitability" in text
    assert ("the value stands" in text) == audited["first"]["stands"]
    assert f"`{audited['first']['attacker']['strategy']}`" in text


def test_dry_run_plans_from_measured_trials(
    audited: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    before = (audited["out"] / "duel.json").read_text()
    assert main(["audit", str(audited["out"]), "--dry-run", "--trials", "3"]) == 0
    out = capsys.readouterr().out
    name = audited["result"]["duel"]["name"]
    assert f"{name}/audit/attacker: 3 trials, " in out
    assert "estimated total: ~" in out
    assert (audited["out"] / "duel.json").read_text() == before  # nothing ran


def test_final_mixes_rebuild_the_strategies(reference_duel: Any) -> None:
    attackers, x, defenders, y = final_mixes(reference_duel.result)
    assert [a.label for a in attackers] == [
        e["strategy"] for e in reference_duel.result["attacker_mix"]
    ]
    assert [d.label for d in defenders] == [
        e["strategy"] for e in reference_duel.result["defender_mix"]
    ]
    assert x.sum() == pytest.approx(1) and y.sum() == pytest.approx(1)
    stale = copy.deepcopy(reference_duel.result)
    stale["attacker_mix"][0]["version"] = 99
    with pytest.raises(AuditError, match="version 99 .* run the duel again"):
        final_mixes(stale)


def test_the_duels_own_responses_are_its_last_rounds_best(reference_duel: Any) -> None:
    """The candidates the audit confirms beside its finds: the strategies behind the duel's
    bounds, by value alone (as the oracle picks them; Optuna's best_trial would skip a trial
    whose constraints say a gate fired)."""
    result = reference_duel.result
    last = result["rounds"][-1]
    spaces = {
        "attacker": AttackerSpace(["badnets"], num_classes=10),
        "defender": DefenderSpace(["strip"], num_classes=10),
    }
    for side, space in spaces.items():
        known = known_response(result, side, space, reference_duel.storage)
        assert known is not None and known.study == last[f"{side}_study"]
        assert known.value == pytest.approx(last[f"{side}_response"])
    missing = copy.deepcopy(result)
    missing["rounds"][-1]["attacker_study"] = "no/such/study"
    assert known_response(missing, "attacker", spaces["attacker"], reference_duel.storage) is None


def test_bad_requests_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no finished duel at" in err and len(err.splitlines()) == 1
    with pytest.raises(AuditError, match="differ from the duel's TPE"):
        AuditSpec(sampler="tpe")
    with pytest.raises(AuditError, match="at least 2"):
        AuditSpec(confirm_seeds=1)
    (tmp_path / "duel.json").write_text("{not json")
    with pytest.raises(AuditError, match="is not a duel.json"):
        load_duel(tmp_path)
