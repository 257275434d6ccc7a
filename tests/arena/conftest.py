"""Fixtures of the operations tests: one small reference duel, and `arena` run in a subprocess
on a Ray of its own.

The reference duel runs once per session in this process, on the session's ``ray_local``
instance (2 CPUs). The tests that need a Ray of their own (a multi-node cluster, a driver
killed with SIGKILL, a worker that dies) run ``arena`` in a subprocess instead, so they never
touch ``ray_local``: the subprocess gets no ``RAY_ADDRESS`` and a private ``RAY_TMPDIR``, so
it neither joins this session's Ray nor leaves a cluster address where another process on the
machine (``ray.init()``, ``--address auto``) would find it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from arena.cell.setting import Setting
from arena.core.processes import processes_under
from arena.data import DataRef
from arena.duels.run import DuelSpec, run_duel
from arena.game.budget import Budget

# one round, 2 + 1 new trials, the value's interval on 2 fresh seeds, 60 images a split
DUEL_ARGV = [
    "duel", "--attacker", "badnets", "--defender", "strip", "--limit", "60", "--seed", "0",
    "--budget", "quick", "--rounds", "1", "--attacker-trials", "2", "--defender-trials", "1",
    "--epsilon", "0", "--seeds", "1", "--ci-seeds", "2",
]  # fmt: skip
BUDGET = Budget(rounds=1, attacker_trials=2, defender_trials=1, epsilon=0.0, seeds=1, ci_seeds=2)


@dataclass
class Reference:
    """The reference duel: what it was asked, where it wrote, what it found."""

    spec: DuelSpec
    storage: str
    cache: Path
    result: dict[str, Any]

    def argv(self, root: Path, *extra: str) -> list[str]:
        """``arena duel`` arguments for the same duel, writing under ``root``."""
        return [
            *DUEL_ARGV,
            "--cache", str(root / "cache"),
            "--storage", f"sqlite:///{root / 'arena.db'}",
            "--out", str(root / "out"),
            "--json",
            *extra,
        ]  # fmt: skip


@pytest.fixture(scope="session")
def reference_duel(ray_local: Any, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    root = tmp_path_factory.mktemp("reference")
    setting = Setting(data=DataRef(limit=60), cache_url=str(root / "cache"))
    spec = DuelSpec("badnets", "strip", setting, BUDGET, seed=0)
    storage = f"sqlite:///{root / 'arena.db'}"
    result = run_duel(spec, storage_url=storage, out_dir=root / "out")
    return Reference(spec, storage, root / "cache", result)


@pytest.fixture()
def ray_env() -> Iterator[dict[str, str]]:
    """Environment for a subprocess that starts a Ray of its own (see the module docstring)."""
    tmp = tempfile.mkdtemp(prefix="arena-ray-", dir="/tmp")  # short: Ray's socket paths
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        RAY_TMPDIR=tmp,
        OMP_NUM_THREADS="1",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
    )
    yield env
    shutil.rmtree(tmp, ignore_errors=True)


class Ops:
    """Helpers of the operations tests (a fixture, since test modules cannot import this one)."""

    @staticmethod
    def driver_script(setup: str, hook: str) -> str:
        """A script that runs ``arena`` (``sys.argv[2:]``) on a local Ray of its own whose
        every worker first calls ``hook``, a function that ``setup`` defines (``sys.argv[1]``
        is the setup's to use)."""
        return f"""{setup}
import sys

from arena.cell.runner import quiet_ray_env

quiet_ray_env()
import ray

ray.init(
    address="local",
    num_cpus=2,
    include_dashboard=False,
    log_to_driver=False,
    runtime_env={{"worker_process_setup_hook": {hook}}},
)
from arena.cli.app import main

sys.exit(main(sys.argv[2:]))
"""

    @staticmethod
    def trial_running(db: Path) -> bool:
        """Whether a trial of the SQLite storage ``db`` is running, read without locking the
        writer (``False`` while the file is missing or busy)."""
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
                row = con.execute("SELECT 1 FROM trials WHERE state = 'RUNNING'").fetchone()
                return bool(row)
        except sqlite3.Error:
            return False

    @staticmethod
    def ray_session(ray_env: dict[str, str], pid: int) -> Path:
        """The session folder of the Ray instance that driver ``pid`` started (Ray names it
        after the driver's pid)."""
        sessions = list(Path(ray_env["RAY_TMPDIR"]).glob(f"ray/session_*_{pid}"))
        assert len(sessions) == 1, sessions
        return sessions[0]

    @staticmethod
    def left_behind(ray_env: dict[str, str], pid: int, wait: float = 20) -> list[int]:
        """The processes still holding files in driver ``pid``'s Ray session, given ``wait``
        seconds to go (Ray's workers exit once their raylet has)."""
        session = str(Ops.ray_session(ray_env, pid))
        deadline = time.monotonic() + wait
        while (left := processes_under(session)) and time.monotonic() < deadline:
            time.sleep(0.5)
        return left

    @staticmethod
    def matches_reference(
        result: dict[str, Any], ref: dict[str, Any], *, same_name: bool = True
    ) -> None:
        """The same duel, run elsewhere, agrees with the reference: the default-vs-default
        cell (trained from scratch by both, in different processes or on different nodes) is
        identical, and the game's value lies within the reference value's 95% interval. Its
        name (the hash of every setting) is the reference's unless it was given one."""
        if same_name:
            assert result["duel"]["name"] == ref["duel"]["name"]
        mine, theirs = result["payoff_matrix"], ref["payoff_matrix"]
        assert mine["attackers"][0] == theirs["attackers"][0]
        assert mine["defenders"][0] == theirs["defenders"][0]
        assert mine["values"][0][0] == theirs["values"][0][0]
        ci = ref["value_ci"]
        assert ci["low"] - 1e-9 <= result["value"] <= ci["high"] + 1e-9, (result["value"], ci)

    @staticmethod
    def run_python(
        code: str, args: list[str], env: dict[str, str], cwd: Path, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """Run ``code`` as a script with ``args``; its output is kept in ``cwd/output.txt``."""
        script = cwd / "script.py"
        script.write_text(code)
        done = subprocess.run(
            [sys.executable, str(script), *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        (cwd / "output.txt").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
        return done

    @staticmethod
    def duel_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
        """The ``--json`` result a finished ``arena duel`` printed on stdout."""
        assert done.returncode == 0, done.stderr[-3000:]
        value, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{") :])
        return value  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def ops() -> type[Ops]:
    return Ops
