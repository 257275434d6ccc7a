"""``arena duel`` on the command line: help, one-line errors, Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arena.cli.app import build_parser, main


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = [line for line in err.strip().splitlines() if not line.startswith("duel ")]
    assert len(lines) == 1, err
    return lines[0]


def test_help_lists_the_budgets() -> None:
    sub = build_parser()._subparsers._group_actions[0].choices["duel"]  # type: ignore[union-attr]
    text = sub.format_help()
    for word in ("quick", "thorough", "--resume", "--storage", "--cache", "optuna-dashboard"):
        assert word in text


def test_unknown_names_list_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(capsys, ["duel", "--attacker", "nope", "--defender", "abs"])
    assert "known attacks" in line and "tca" in line
    line = _error(capsys, ["duel", "--attacker", "tca", "--defender", "strip+nope"])
    assert "known defenses" in line and "abs" in line
    line = _error(capsys, ["duel", "--attacker", "tca", "--defender", "strip,nope"])
    assert "known defenses" in line and "abs" in line
    line = _error(capsys, ["duel", "--attacker", "tca", "--defender", "abs,strip,abs"])
    assert "abs twice" in line
    line = _error(capsys, ["evaluate", "--attacker", "tca", "--defender", "strip,abs"])
    assert "strip,abs" in line and "duel" in line  # a choice is the duel's, not a cell's


def test_bad_storage_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["duel", "--attacker", "badnets", "--defender", "none", "--limit", "40",
            "--storage", "nosuchdb://x", "--cache", str(tmp_path / "c"), "--out", str(tmp_path)]
    line = _error(capsys, argv)
    assert "nosuchdb://x" in line and "--storage" in line


def test_bad_budget_override(capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(capsys, ["duel", "--attacker", "tca", "--defender", "abs", "--rounds", "0"])
    assert "--rounds" in line


def test_ctrl_c_keeps_work_and_says_how_to_resume(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr("arena.duels.run.run_duel", interrupted)
    argv = ["duel", "--attacker", "tca", "--defender", "abs", "--out", str(tmp_path)]
    assert main(argv) == 130
    assert "--resume" in capsys.readouterr().err
