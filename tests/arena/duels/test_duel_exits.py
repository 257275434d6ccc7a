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
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def driver(
    argv: list[str], env: dict[str, str], root: Path, script: str | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``arena`` (or ``script``) with ``argv`` in its own process group, its output in
    ``root/driver.out`` and ``driver.err``; killed with its group if the test leaves it
    running."""
    command = [sys.executable, "-m", "arena"] if script is None else [sys.executable, script]
    with (root / "driver.out").open("w") as out, (root / "driver.err").open("w") as err:
        proc = subprocess.Popen(
            [*command, *argv], env=env, cwd=root, stdout=out, stderr=err, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_ctrl_c_mid_round_leaves_no_process_and_says_how_to_resume(
    reference_duel: Any, ray_env: dict[str, str], ops: Any, tmp_path: Path
) -> None:
    shutil.copytree(reference_duel.cache, tmp_path / "cache")
    with driver(reference_duel.argv(tmp_path), ray_env, tmp_path) as proc:
        deadline = time.monotonic() + 600
        while not ops.trial_running(tmp_path / "arena.db") and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "driver.err").read_text()[-3000:]
        os.kill(proc.pid, signal.SIGINT)  # the driver only, not its process group
        code = proc.wait(timeout=300)
        err = (tmp_path / "driver.err").read_text()
        assert code == 130, err[-3000:]
        assert "--resume" in err.strip().splitlines()[-1] and "Traceback" not in err
        assert ops.left_behind(ray_env, proc.pid) == []


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
    reference_duel: Any, ray_env: dict[str, str], ops: Any, tmp_path: Path
) -> None:
    (tmp_path / "driver.py").write_text(DISK_FULL)
    argv = reference_duel.argv(tmp_path)
    with driver(argv, ray_env, tmp_path, str(tmp_path / "driver.py")) as proc:
        code = proc.wait(timeout=600)
        err = (tmp_path / "driver.err").read_text()
        assert code == 2, err[-3000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith("arena duel: error: ") and "No space left on device" in last
        assert "Traceback" not in err
        assert ops.left_behind(ray_env, proc.pid) == []
