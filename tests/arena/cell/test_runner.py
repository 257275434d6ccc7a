"""Joining a Ray cluster: ``--address`` and ``RAY_ADDRESS``, and one-line errors when nothing
answers there (Ray itself retries for minutes); stopping what a killed driver's Ray left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from arena.cell.runner import Compute, RayUnavailable, probe_address
from arena.cli.app import main


def test_a_closed_port_fails_at_once_and_auto_is_left_to_ray() -> None:
    start = time.monotonic()
    with pytest.raises(RayUnavailable, match="nothing answers at the Ray cluster address"):
        probe_address("127.0.0.1:1")
    with pytest.raises(RayUnavailable, match="ray start --head"):
        probe_address("ray://localhost:1")
    assert time.monotonic() - start < 30
    probe_address("auto")  # Ray finds (or fails to find) the cluster itself


@pytest.mark.parametrize("how", ["--address", "RAY_ADDRESS"])
def test_duel_on_an_unreachable_cluster_is_one_line_before_any_work(
    how: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    argv = [
        "duel", "--attacker", "badnets", "--defender", "none", "--limit", "40",
        "--storage", f"sqlite:///{tmp_path / 'a.db'}", "--cache", str(tmp_path / "cache"),
        "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    if how == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    else:
        argv += ["--address", "127.0.0.1:1"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    start, error = err.strip().splitlines()
    assert out == "" and start.endswith("on the Ray cluster at 127.0.0.1:1")
    assert error.startswith("arena duel: error: nothing answers") and "RAY_ADDRESS" in error
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_without_an_address_the_duel_runs_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert Compute().target is None and Compute().where() == "a local Ray instance"
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    assert Compute().target == "head:6379"
    assert Compute(address="other:6379").target == "other:6379"


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_reap_session_stops_what_a_killed_drivers_ray_left_running(tmp_path: Path) -> None:
    from arena.cell.runner import reap_session

    dead = _dead_pid()
    session = tmp_path / f"session_2026-01-01_00-00-00_000000_{dead}"
    (session / "logs").mkdir(parents=True)
    holder = "import sys, time\nf = open(sys.argv[1], 'a')\nprint('ready', flush=True)\n"
    holder += "time.sleep(60)"
    agent = subprocess.Popen([sys.executable, "-c", holder, str(session / "logs" / "agent.log")],
                             stdout=subprocess.PIPE, text=True)
    other = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path / "elsewhere.log")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None and agent.stdout.readline() == "ready\n"
        assert other.stdout is not None and other.stdout.readline() == "ready\n"
        # a session that another (or a live) driver started is never touched
        assert reap_session(str(session), dead + 1) == 0
        assert reap_session(str(session), os.getpid()) == 0
        assert agent.poll() is None
        assert reap_session(str(session), dead) == 1
        assert agent.wait(timeout=10) == -signal.SIGKILL
        assert other.poll() is None  # it holds nothing in the session folder
    finally:
        for proc in (agent, other):
            proc.kill()
            proc.wait()


def test_tunes_notices_and_its_state_copy_errors_are_quiet_unless_verbose(ray_local: Any) -> None:
    # Tune logs a traceback when a Ctrl-C lands while it copies its experiment state, which
    # Arena never restores from: the duel's last line must stay its own "--resume" hint
    import logging

    from arena.cell.runner import ensure_ray

    names = ("ray.tune.execution.tune_controller", "ray.tune.execution.experiment_state")
    root = logging.getLogger()
    saved = [root.level, *(logging.getLogger(n).level for n in names)]
    try:
        root.setLevel(logging.WARNING)
        ensure_ray()
        assert not any(logging.getLogger(n).isEnabledFor(logging.ERROR) for n in names)
        root.setLevel(logging.INFO)  # -v
        ensure_ray()
        assert all(logging.getLogger(n).isEnabledFor(logging.ERROR) for n in names)
    finally:
        root.setLevel(saved[0])
        for name, level in zip(names, saved[1:], strict=True):
            logging.getLogger(name).setLevel(level)


def _runtime_env() -> tuple[str, int]:
    import ray

    return ray.get_runtime_context().get_runtime_env_string(), os.getpid()


def test_one_pool_cell_tasks_and_trials_tasks_share_a_runtime_environment(ray_local: Any) -> None:
    """Ray keeps worker processes per runtime environment, and a trial's task inherits the one
    Ray Tune gives its actor: the driver's cell tasks ask for the same, so both kinds of task
    run on the same warm workers (bench/README.md, "One pool of warm workers")."""
    from ray.tune.execution.class_cache import _ActorClassCache

    from arena.cell.runner import plan_resources
    from arena.cell.setting import Setting

    ray = ray_local
    resources = plan_resources(Compute(), Setting())
    cell = ray.remote(**resources.for_task())(_runtime_env)
    trial = ray.remote(_runtime_env).options(**resources.for_trial_task())

    class Trial:
        def run(self) -> tuple[str, int]:
            return ray.get(trial.remote())

    # the actor class exactly as Tune makes it for a trial
    actor = _ActorClassCache().get(Trial).options(num_cpus=0.01).remote()
    cell_env, _ = ray.get(cell.remote())
    trial_env, _ = ray.get(actor.run.remote())
    ray.kill(actor)
    assert cell_env == trial_env
    assert "PL_DISABLE_FORK" in trial_env  # Tune's, which the cell tasks now ask for as well
