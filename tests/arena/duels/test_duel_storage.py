"""A duel on each kind of Optuna storage besides the default SQLite file: Optuna's file
journal, and a real PostgreSQL server.

The PostgreSQL test needs a server: ``ARENA_TEST_POSTGRES_URL=postgresql://USER:PASSWORD@
127.0.0.1:5432/DB`` (``.ci/run`` installs Debian's ``postgresql``, starts it and sets this);
without it the test is skipped. Both replay the session's reference duel from a copy of its
cache (the storage is what is tested, not training) under a fresh name, and the PostgreSQL
test deletes its studies afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import optuna
import pytest
from optuna.trial import TrialState

from arena.cli.app import main
from studies.storage import duel_studies, open_storage, redact

POSTGRES_ENV = "ARENA_TEST_POSTGRES_URL"


@pytest.fixture(params=["journal", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "journal":
        return f"journal://{tmp_path / 'arena.log'}"
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(
            f"no PostgreSQL server configured: set {POSTGRES_ENV}="
            "postgresql://USER:PASSWORD@127.0.0.1:5432/DB (.ci/run starts one)"
        )
    return url


def test_a_duel_keeps_its_studies_in_the_storage(
    storage_url: str,
    reference_duel: Any,
    ops: Any,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    shutil.copytree(reference_duel.cache, tmp_path / "cache")
    name = f"storage-test-{uuid.uuid4().hex[:8]}"
    argv = reference_duel.argv(tmp_path, "--storage", storage_url, "--name", name)
    storage = open_storage(storage_url)
    try:
        assert main(argv) == 0
        out, err = capsys.readouterr()
        result = json.loads(out)
        assert f"studies in {redact(storage_url)}" in err
        assert result["duel"]["storage"] == redact(storage_url)
        secret = urlsplit(storage_url).password
        for written in ("duel.json", "report.md"):
            assert not secret or secret not in (tmp_path / "out" / written).read_text()
        names = duel_studies(storage, name)
        assert len(names) == 2 * len(result["rounds"])
        for study_name in names:
            study = optuna.load_study(study_name=study_name, storage=storage)
            trials = study.get_trials()
            # each scored, or pruned (its BadNet stopped early: no metrics, no constraints)
            assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
            assert len(trials) == study.user_attrs["planned_trials"]
            for t in trials:
                assert "node" in t.user_attrs
                if t.state == TrialState.PRUNED:
                    continue
                assert {"strategy", "ca", "asr", "payoffs"} <= set(t.user_attrs)
                assert len(t.system_attrs["constraints"]) == 2
        # the same command again replays from the storage and the cache: no trial, no training
        assert main(argv) == 0
        again = json.loads(capsys.readouterr().out)
        assert again["trials"] == [] and again["trainings"] == 0
        assert again["value"] == result["value"]
        ops.matches_reference(result, reference_duel.result, same_name=False)
    finally:
        if storage_url.startswith("postgres"):
            for study_name in duel_studies(storage, name):
                optuna.delete_study(study_name=study_name, storage=storage)
