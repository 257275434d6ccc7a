"""Faults: a driver killed with SIGKILL mid-round and resumed; a trial whose worker dies.

Both run ``arena duel`` in a subprocess on a local Ray of its own (``tests/arena/conftest.py``),
the session's reference duel, and check the Optuna storage trial by trial.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from arena.cell.setting import Setting
from arena.core.processes import processes_under
from studies.oracle import TuneOracle, rerun_params
from studies.spaces import AttackerSpace
from studies.storage import open_storage


def _studies(db: Path) -> dict[str, tuple[dict[str, Any], list[FrozenTrial]]]:
    storage = open_storage(f"sqlite:///{db}", create=False)
    return {
        s.study_name: (s.user_attrs, storage.get_all_trials(s._study_id))
        for s in storage.get_all_studies()
    }


def _key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _mid_round(db: Path) -> str | None:
    """A study with a finished trial and a running one, read without locking the writer."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            rows = con.execute(
                "SELECT s.study_name, t.state, count(*) FROM trials t "
                "JOIN studies s ON s.study_id = t.study_id GROUP BY s.study_name, t.state"
            ).fetchall()
    except sqlite3.Error:  # not created yet, or busy
        return None
    states: dict[str, dict[str, int]] = {}
    for study, state, n in rows:
        states.setdefault(study, {})[state] = n
    for study, count in states.items():
        if count.get("COMPLETE", 0) >= 1 and count.get("RUNNING", 0) >= 1:
            return study
    return None


def _kill_mid_round(argv: list[str], env: dict[str, str], root: Path) -> tuple[str, int]:
    """Start the duel, SIGKILL its driver once a study is mid-way; the study's name and the
    driver's pid. What its Ray leaves running is left for the resumed run to stop."""
    db = root / "arena.db"
    with (root / "killed.txt").open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arena", *argv],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 900
            study = None
            while study is None and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
                study = _mid_round(db)
            assert study is not None, (root / "killed.txt").read_text()[-3000:]
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=60) == -signal.SIGKILL
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
    return study, proc.pid


def test_a_driver_killed_mid_round_resumes_without_losing_or_repeating_a_trial(
    reference_duel: Any, ray_env: dict[str, str], ops: Any, tmp_path: Path
) -> None:
    argv = reference_duel.argv(tmp_path)
    cut, killed = _kill_mid_round(argv, ray_env, tmp_path)
    try:
        _resume_after_a_kill(argv, cut, killed, reference_duel, ray_env, ops, tmp_path)
    finally:  # whatever is left of the killed driver's processes
        with contextlib.suppress(ProcessLookupError):
            os.killpg(killed, signal.SIGKILL)


def _resume_after_a_kill(
    argv: list[str],
    cut: str,
    killed: int,
    reference_duel: Any,
    ray_env: dict[str, str],
    ops: Any,
    tmp_path: Path,
) -> None:
    session = str(ops.ray_session(ray_env, killed))
    left = processes_under(session)  # Ray's agents outlive a killed driver
    before = _studies(tmp_path / "arena.db")
    finished = {
        name: {t.number: t for t in trials if t.state == TrialState.COMPLETE}
        for name, (_, trials) in before.items()
    }
    running = {
        name: [t for t in trials if t.state == TrialState.RUNNING]
        for name, (_, trials) in before.items()
    }
    assert finished[cut] and running[cut]

    # the same command without --resume refuses to start over, and changes nothing
    refused = subprocess.run(
        [sys.executable, "-m", "arena", *argv],
        env=ray_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert refused.returncode == 2 and "--resume" in refused.stderr, refused.stderr[-2000:]
    assert _studies(tmp_path / "arena.db").keys() == before.keys()

    resumed = ops.run_python(
        "import sys\nfrom arena.cli.app import main\nsys.exit(main(sys.argv[1:]))\n",
        [*argv, "--resume"],
        ray_env,
        tmp_path,
    )
    result = ops.duel_json(resumed)
    # the resumed run, taking over the killed driver's lease, stopped what its Ray left
    assert left and processes_under(session) == []
    assert "Ray process(es) the killed driver left running" in resumed.stderr
    after = _studies(tmp_path / "arena.db")
    ran = [t["study"] for t in result["trials"]]
    for name, (attrs, trials) in after.items():
        planned = attrs["planned_trials"]
        states = [t.state for t in trials]
        # done: scored, or stopped by the pruning rule (a BadNet that could not pass the gate)
        complete = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        failed = [t for t in trials if t.state == TrialState.FAIL]
        assert len(complete) == planned and TrialState.RUNNING not in states
        assert TrialState.WAITING not in states
        # no finished trial lost: each is there, unchanged
        for number, old in finished.get(name, {}).items():
            new = trials[number]
            assert (new.state, new.params, new.values) == (old.state, old.params, old.values)
            assert new.datetime_complete == old.datetime_complete
        # the leftovers of the kill are marked failed, and each ran again once, with the
        # parameters it had (a trial killed while they were being sampled gets the rest anew)
        assert [t.number for t in failed] == [t.number for t in running.get(name, [])]
        if name in before:  # the resumed run enqueued the reruns and nothing else
            last = max(t.number for t in before[name][1])
            reruns = [c for c in complete if c.number > last and "fixed_params" in c.system_attrs]
            assert sorted(map(_key, (c.system_attrs["fixed_params"] for c in reruns))) == sorted(
                map(_key, map(rerun_params, failed))
            )
        # none ran twice: the resumed run played exactly the trials that were missing
        assert ran.count(name) == planned - len(finished.get(name, {}))
    # every study of the killed run is still there (its lease, released at the end, aside)
    assert cut in after and {n for n in before if "/lease" not in n} <= after.keys()
    ops.matches_reference(result, reference_duel.result)


# the setup of ops.driver_script(WORKER_DIES, "kill_the_first_trial")
WORKER_DIES = """
import os, signal, sys
from pathlib import Path

MARKER = Path(sys.argv[1])


def kill_the_first_trial() -> None:
    '''In every Ray worker: the first trial to start (across workers) kills its process.'''
    import studies.scoring as oracle

    score = oracle.score_trial

    def dying(params, job):
        try:
            os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return score(params, job)
        os.kill(os.getpid(), signal.SIGKILL)

    oracle.score_trial = dying

"""


def test_a_trial_whose_worker_dies_runs_again_and_is_stored_once(
    reference_duel: Any, ray_env: dict[str, str], ops: Any, tmp_path: Path
) -> None:
    shutil.copytree(reference_duel.cache, tmp_path / "cache")  # the fault, not training
    marker = tmp_path / "worker-killed"
    done = ops.run_python(
        ops.driver_script(WORKER_DIES, "kill_the_first_trial"),
        [str(marker), *reference_duel.argv(tmp_path)],
        ray_env,
        tmp_path,
    )
    result = ops.duel_json(done)
    assert marker.exists()
    assert [t["retries"] for t in result["trials"] if t["retries"]] == [1]
    assert "running it again (retry 1 of 2)" in done.stderr
    for attrs, trials in _studies(tmp_path / "arena.db").values():
        assert len(trials) == attrs["planned_trials"]  # each once: scored, or pruned
        assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    ops.matches_reference(result, reference_duel.result)


def test_with_no_retries_a_lost_worker_fails_its_trial_only(
    reference_duel: Any, ray_env: dict[str, str], ops: Any, tmp_path: Path
) -> None:
    shutil.copytree(reference_duel.cache, tmp_path / "cache")
    done = ops.run_python(
        ops.driver_script(WORKER_DIES, "kill_the_first_trial"),
        # without pruning: the lost trial may be the warm start, the only one a pruned study
        # completes (a study left with pruned and failed trials only is a one-line error)
        [str(tmp_path / "k"), *reference_duel.argv(tmp_path, "--max-failures", "0", "--no-prune")],
        ray_env,
        tmp_path,
    )
    result = ops.duel_json(done)
    studies = _studies(tmp_path / "arena.db")
    states = [t.state for _, trials in studies.values() for t in trials]
    assert states.count(TrialState.FAIL) == 1 and TrialState.RUNNING not in states
    assert all(t["retries"] == 0 for t in result["trials"])


def test_a_cut_trial_runs_again_with_what_it_was_given(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'a.db'}")
    study.enqueue_trial({"a": 1, "b": 0.5})
    full = study.ask()
    full.suggest_int("a", 0, 5), full.suggest_float("b", 0, 1)
    bare = study.ask()  # killed before its parameters were sampled
    study.enqueue_trial({"a": 2})
    partial = study.ask()  # an enqueued trial killed before sampling the rest
    frozen = {t.number: t for t in study.get_trials()}
    assert rerun_params(frozen[full.number]) == {"a": 1, "b": 0.5}
    assert rerun_params(frozen[bare.number]) == {}
    assert rerun_params(frozen[partial.number]) == {"a": 2}


def test_a_study_cut_off_before_it_was_ready_is_made_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    half = optuna.create_study(storage=url, study_name="d/r01/attacker")
    half.set_user_attr("duel", "d")  # the driver died before the warm start was enqueued
    space = AttackerSpace(["badnets"], num_classes=10)
    oracle = TuneOracle(space, "d", Setting(), (0,), trials=2, storage_url=url, tune_dir="")
    study, remaining = oracle._prepare("d/r01/attacker", 1, space.defaults(), [])
    assert remaining == 3 and study.user_attrs["planned_trials"] == 3
    assert [t.state for t in study.get_trials()] == [TrialState.WAITING] * 2  # warm + anchor
    assert study.get_trials()[0].system_attrs["fixed_params"] == space.encode(space.defaults()[0])
