"""The leaderboard at the reference duel's size: killed mid-table, resumed, replayed.

``arena table`` runs in a subprocess on a Ray of its own (``tests/arena/conftest.py``) from a
copy of the reference duel's storage and cache, so its first pair (the reference duel itself)
replays; it is killed with SIGKILL while the second pair's first trial runs, then resumed
in this process."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from arena.cell.provenance import SCHEMA_VERSION
from arena.cli.app import main
from arena.duels.table import COLUMNS, defense_summary, pair_row
from arena.report.table import table_markdown

# the reference duel's budget (tests/arena/conftest.py)
BUDGET_ARGV = [
    "--limit", "60", "--seed", "0", "--budget", "quick", "--rounds", "1",
    "--attacker-trials", "2", "--defender-trials", "1", "--epsilon", "0", "--seeds", "1",
    "--ci-seeds", "2",
]  # fmt: skip


def table_argv(root: Path, *extra: str) -> list[str]:
    return [
        "table", "--attackers", "badnets", "--defenders", "strip,shrinkpad", *BUDGET_ARGV,
        "--no-audit", "--cache", str(root / "cache"), "--storage", f"sqlite:///{root / 'arena.db'}",
        "--out", str(root / "table"), "--duels-dir", str(root / "duels"), *extra,
    ]  # fmt: skip


def test_the_table_resumes_after_a_kill_and_replays(
    reference_duel: Any,
    ray_env: dict[str, str],
    ops: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copytree(reference_duel.cache, tmp_path / "cache")
    shutil.copy(reference_duel.storage.removeprefix("sqlite:///"), tmp_path / "arena.db")
    argv = table_argv(tmp_path)
    with (tmp_path / "driver.err").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "arena", *argv], env=ray_env, cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        # the first pair (the reference duel) replays and is written to the table; then the
        # second pair's first trial runs
        table, db = tmp_path / "table" / "table.json", tmp_path / "arena.db"
        while proc.poll() is None and not (table.is_file() and ops.trial_running(db)):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert proc.poll() is None, (tmp_path / "driver.err").read_text()[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    partial = json.loads((tmp_path / "table" / "table.json").read_text())
    assert [p["defender"] for p in partial["pairs"]] == ["strip"] and not partial["complete"]
    assert partial["pairs"][0]["trainings"] == 0  # the reference duel, replayed

    # without --resume the second duel's unfinished study is refused, in one line
    assert main(table_argv(tmp_path, "--json")) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(table_argv(tmp_path, "--resume", "--json")) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["complete"] and [p["defender"] for p in record["pairs"]] == ["strip", "shrinkpad"]
    first = record["pairs"][0]
    assert first["duel"] == reference_duel.result["duel"]["name"]
    assert first["value"] == reference_duel.result["value"]
    assert record["schema_version"] == SCHEMA_VERSION
    assert record["provenance"]["data"]["limit"] == 60
    assert record["provenance"]["seeds"] == [0, 1000, 1001]  # the duels', their intervals'
    rows = list(csv.DictReader(io.StringIO((tmp_path / "table" / "table.csv").read_text())))
    assert [r["defender"] for r in rows] == ["strip", "shrinkpad"] and set(rows[0]) == set(COLUMNS)
    for row in record["pairs"]:
        assert row["static_low"] <= row["static"] <= row["static_high"]
        assert row["adaptive_low"] <= row["adaptive"] <= row["adaptive_high"]
        assert row["gap"] == pytest.approx(row["adaptive"] - row["static"])
        assert row["seeds"] == 2
    assert (tmp_path / "table" / "table.png").stat().st_size > 0
    for name in (p["duel"] for p in record["pairs"]):  # ordinary duels: `arena audit` finds them
        assert (tmp_path / "duels" / name / "duel.json").is_file()

    # run again: every duel and every static cell replays from storage and cache
    assert main(table_argv(tmp_path, "--json")) == 0
    again = json.loads(capsys.readouterr().out)
    assert [p["trainings"] for p in again["pairs"]] == [0, 0]
    for old, new in zip(record["pairs"], again["pairs"], strict=True):
        for key in ("static", "adaptive", "value", "gap"):
            assert new[key] == old[key], key

    # the dry run sees both duels done
    assert main([*table_argv(tmp_path), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert plan.count("done, replays from storage") == 2 and "estimated total: ~0 s" in plan


def _result(attacker: str, defender: str, values: list[float], audit: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "duel": {"attacker": attacker, "defender": defender, "name": f"{attacker}-vs-{defender}"},
        "value_ci": {"seeds": [1000, 1001, 1002], "values": values},
        "value": values[0],
        "lower_bound": min(values),
        "upper_bound": max(values),
        "trainings": 3,
    }
    if audit:
        out["audit"] = {
            "exploitability": {"mean": 0.1, "low": -0.05, "high": 0.25},
            "stands": False,
            "trainings": 2,
        }
    return out


def test_rows_pair_static_and_adaptive_seed_by_seed() -> None:
    row = pair_row(_result("a", "d", [0.5, 0.7, 0.6], audit=True), [0.2, 0.5, 0.2], 12.0)
    assert row["adaptive"] == pytest.approx(0.6) and row["static"] == pytest.approx(0.3)
    # the paired gap's interval is narrower than the difference of the two intervals
    assert row["gap"] == pytest.approx(0.3)
    assert row["gap_high"] - row["gap_low"] < (row["adaptive_high"] - row["adaptive_low"]) + (
        row["static_high"] - row["static_low"]
    )
    assert row["audited_exploitability"] == 0.1 and row["stands"] is False
    assert row["trainings"] == 5
    plain = pair_row(_result("b", "d", [0.9, 0.8, 0.85], audit=False), [0.1, 0.1, 0.1], 1.0)
    assert plain["audited_exploitability"] is None and plain["stands"] is None
    # the defense's worst case: over attackers, static and adaptive each their own maximum
    [summary] = defense_summary([row, plain])
    assert summary["adaptive_worst_attacker"] == "b" and summary["static_worst_attacker"] == "a"
    assert summary["adaptive_gap"] == pytest.approx(0.85 - 0.3)
    record = {
        "name": "t", "attackers": ["a", "b"], "defenders": ["d"], "pairs": [row, plain],
        "defenses": [summary], "data": {"name": "digits"}, "model": "small-cnn",
        "budget": {"rounds": 1, "attacker_trials": 2, "defender_trials": 1}, "seconds": 13.0,
    }  # fmt: skip
    md = table_markdown(record)
    assert "| a | 0.30 -> 0.60* |" in md and "| b | 0.10 -> 0.85 |" in md
    assert "not audited" in md and "| d | 0.30 (a) | 0.85 (b) | +0.55 |" in md


def test_several_duels_at_once_join_one_ray(
    reference_duel: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--jobs 2``: both duels (and their audits) run as drivers of their own on this
    session's Ray, under the names the table then replays them by."""
    shutil.copytree(reference_duel.cache, tmp_path / "cache")
    shutil.copy(reference_duel.storage.removeprefix("sqlite:///"), tmp_path / "arena.db")
    argv = [a for a in table_argv(tmp_path, "--jobs", "2", "--json") if a != "--no-audit"]
    assert main([*argv, "--audit", "1", "--sampler", "random"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["complete"] and record["audit"]["trials"] == 1
    for row in record["pairs"]:
        folder = tmp_path / "duels" / row["duel"]
        assert (folder / "duel.err").is_file()  # its driver ran apart, and wrote here
        assert row["trainings"] == 0  # ... so here the duel and its audit replayed
        assert row["audited_exploitability"] is not None and row["stands"] in (True, False)
        assert json.loads((folder / "duel.json").read_text())["audit"]["sampler"] == "random"
    assert record["pairs"][0]["value"] == reference_duel.result["value"]


def test_a_failed_job_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*table_argv(tmp_path), "--jobs", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err
