"""``--reproducible``: a duel replays the same search from its seed, whatever the timing.

The same small duel twice: once from a cold cache (each trial trains for seconds, and which of
two trials ends first is up to the machine), once with that cache warm in another storage
(every trial ends in a fraction of a second). Each study's trials must ask for the same
parameters in the same order, and the duel must reach the same value. Without
``reproducible`` the two runs may or may not part ways (they did when each study had a
``Tuner`` of its own; with one ``Tuner`` a round they happened not to, checked once), so the
check that can fail whatever the machine's timing is the searcher's own:
``tests/studies/test_searchers.py`` ends a TPE search's trials in two orders.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from arena.cell.setting import Setting
from arena.data import DataRef
from arena.duels.run import DuelSpec, run_duel
from arena.game.budget import Budget
from studies.storage import open_storage

BUDGET = Budget(
    rounds=1, attacker_trials=6, defender_trials=4, epsilon=0.0, ci_seeds=0, reproducible=True
)


def searched(storage_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every study's trials' parameters, by study name and trial number."""
    storage = open_storage(storage_url, create=False)
    out = {}
    for study in storage.get_all_studies():
        trials = sorted(storage.get_all_trials(study._study_id), key=lambda t: t.number)
        out[study.study_name] = [t.params for t in trials]
    return out


def test_a_reproducible_duel_replays_its_search_whatever_the_timing(
    ray_local: Any, tmp_path: Path
) -> None:
    runs = []
    for run in ("cold", "warm"):
        root = tmp_path / run
        root.mkdir()
        if run == "warm":  # the cold run's models and cells: every trial ends at once
            shutil.copytree(tmp_path / "cold" / "cache", root / "cache")
        spec = DuelSpec(
            "badnets",
            "strip",
            Setting(data=DataRef(limit=60), cache_url=str(root / "cache")),
            BUDGET,
        )
        storage = f"sqlite:///{root / 'arena.db'}"
        result = run_duel(spec, storage_url=storage, out_dir=root / "out")
        runs.append((result, searched(storage)))
    (cold, cold_trials), (warm, warm_trials) = runs
    assert warm["trainings"] == 0 < cold["trainings"]
    assert set(cold_trials) == set(warm_trials) and len(cold_trials) >= 2
    for study, params in cold_trials.items():
        assert len(params) >= 2 and warm_trials[study] == params, study
    assert warm["value"] == cold["value"]
    assert warm["duel"]["name"] == cold["duel"]["name"]
    assert "reproducible" in cold["duel"]["budget"]
