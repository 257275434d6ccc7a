"""Every exit Arena handles leaves none of its processes running: Ctrl-C in the middle of a
round, and an error raised after its local Ray started (the normal end is checked by the
lease test's first driver, ``test_duel_lease.py``).

Each case runs ``arena duel`` in a subprocess that starts a Ray of its own
(``tests/arena/conftest.py``), from a copy of the reference duel's cache, and looks for what
is left in the Ray session folder the driver started (Ray names it after the driver's pid).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from arena.core.processes import processes_under


def _running(db: Path) -> bool:
    """Whether a trial is running, read without locking the writer."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return bool(con.execute("SELECT 1 FROM trials WHERE state = 'RUNNING'").fetchone())
    except sqlite3.Error:  # not created yet, or busy
        return False


def _left_behind(ray_env: dict[str, str], pid: int) -> list[int]:
    """The processes still holding files in the Ray session of driver ``pid``, given a few
    seconds to go (Ray's workers exit once their raylet has)."""
    sessions = list(Path(ray_env["RAY_TMPDIR"]).glob(f"ray/session_*_{pid}"))
    assert len(sessions) == 1, sessions
    deadline = time.monotonic() + 20
    while (left := processes_under(str(sessions[0]))) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _start(argv: list[str], env: dict[str, str], root: Path, script: str | None = None) -> Any:
    command = [sys.executable, "-m", "arena"] if script is None else [sys.executable, script]
    with (root / "driver.out").open("w") as out, (root / "driver.err").open("w") as err:
        return subprocess.Popen(
            [*command, *argv], env=env, cwd=root, stdout=out, stderr=err, start_new_session=True
        )


def test_ctrl_c_mid_round_leaves_no_process_and_says_how_to_resume(
    reference_duel: Any, ray_env: dict[str, str], tmp_path: Path
) -> None:
    shutil.copytree(reference_duel.cache, tmp_path / "cache")
    driver = _start(reference_duel.argv(tmp_path), ray_env, tmp_path)
    try:
        deadline = time.monotonic() + 600
        while not _running(tmp_path / "arena.db") and driver.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert driver.poll() is None, (tmp_path / "driver.err").read_text()[-3000:]
        os.kill(driver.pid, signal.SIGINT)  # the driver only, not its process group
        code = driver.wait(timeout=300)
        err = (tmp_path / "driver.err").read_text()
        assert code == 130, err[-3000:]
        assert "--resume" in err.strip().splitlines()[-1] and "Traceback" not in err
        assert _left_behind(ray_env, driver.pid) == []
    finally:
        if driver.poll() is None:
            driver.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)


# a disk that fills up once the duel's own local Ray has started
DISK_FULL = """
import errno, sys

import arena.duels.run as run
from arena.cell.runner import ensure_ray


def play_rows(*args, **kwargs):
    ensure_ray()
    raise OSError(errno.ENOSPC, "No space left on device", "cache")


run.play_rows = play_rows
from arena.cli.app import main

sys.exit(main(sys.argv[1:]))
"""


def test_an_error_after_ray_started_is_one_line_and_leaves_no_process(
    reference_duel: Any, ray_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "driver.py").write_text(DISK_FULL)
    driver = _start(reference_duel.argv(tmp_path), ray_env, tmp_path, str(tmp_path / "driver.py"))
    try:
        code = driver.wait(timeout=600)
        err = (tmp_path / "driver.err").read_text()
        assert code == 2, err[-3000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith("arena duel: error: ") and "No space left on device" in last
        assert "Traceback" not in err
        assert _left_behind(ray_env, driver.pid) == []
    finally:
        if driver.poll() is None:
            driver.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
