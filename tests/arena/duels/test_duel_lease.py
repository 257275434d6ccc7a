"""One driver per duel: a second ``arena duel`` on a duel that is running, with or without
``--resume``, is refused in one line naming the first, which finishes untouched.

The first driver runs the session's reference duel in a subprocess on a Ray of its own
(``tests/arena/conftest.py``) from a copy of its cache; its trials wait for a file that the
test writes once the second driver has been refused, so the first is certain to be mid-round
while the second starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from studies.lease import lease_name
from studies.storage import open_storage

TRIALS_WAIT = """
import sys, time
from pathlib import Path

GO = Path(sys.argv[1])


def trials_wait_for_go() -> None:
    '''In every Ray worker: a trial starts scoring only once GO exists.'''
    import studies.scoring as oracle

    score = oracle.score_trial

    def held(params, job):
        deadline = time.monotonic() + 600
        while not GO.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return score(params, job)

    oracle.score_trial = held

"""


def test_a_second_driver_is_refused_and_the_first_finishes_untouched(
    reference_duel: Any, ray_env: dict[str, str], ops: Any, tmp_path: Path
) -> None:
    shutil.copytree(reference_duel.cache, tmp_path / "cache")  # the lease, not training
    argv = reference_duel.argv(tmp_path)
    go = tmp_path / "go"
    (tmp_path / "first.py").write_text(ops.driver_script(TRIALS_WAIT, "trials_wait_for_go"))
    with (tmp_path / "first.out").open("w") as out, (tmp_path / "first.err").open("w") as err:
        first = subprocess.Popen(
            [sys.executable, str(tmp_path / "first.py"), str(go), *argv],
            env=ray_env,
            cwd=tmp_path,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        while not ops.trial_running(tmp_path / "arena.db") and first.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert first.poll() is None, (tmp_path / "first.err").read_text()[-3000:]
        name = reference_duel.result["duel"]["name"]
        for extra in ([], ["--resume"]):
            second = subprocess.run(
                [sys.executable, "-m", "arena", *argv, *extra],
                env=ray_env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
            )
            # the duel's start line, then the refusal in one line
            lines = second.stderr.strip().splitlines()
            assert second.returncode == 2 and len(lines) == 2, second.stderr[-3000:]
            assert lines[1].startswith(f"arena duel: error: duel {name} is already being run by ")
            assert f"@{socket.gethostname()} (pid {first.pid}) since " in lines[1]
        go.touch()
        assert first.wait(timeout=600) == 0, (tmp_path / "first.err").read_text()[-3000:]
        # the normal end leaves nothing of the Ray instance the first driver started
        assert ops.left_behind(ray_env, first.pid) == []
    finally:
        if first.poll() is None:
            first.kill()
        with contextlib.suppress(ProcessLookupError):  # anything of its Ray still there
            os.killpg(first.pid, signal.SIGKILL)
    text = (tmp_path / "first.out").read_text()
    result, _ = json.JSONDecoder().raw_decode(text[text.index("{") :])
    storage = open_storage(f"sqlite:///{tmp_path / 'arena.db'}", create=False)
    studies = storage.get_all_studies()
    assert lease_name(name) not in {s.study_name for s in studies}  # released at the end
    ran = [t["study"] for t in result["trials"]]
    for study in studies:
        trials = storage.get_all_trials(study._study_id)
        planned = study.user_attrs["planned_trials"]
        assert len(trials) == planned  # each scored, or pruned (stopped early)
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        assert ran.count(study.study_name) == planned  # all of them run by the first driver
    assert (tmp_path / "out" / "duel.json").is_file()
    ops.matches_reference(result, reference_duel.result)
