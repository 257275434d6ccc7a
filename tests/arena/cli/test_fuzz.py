"""Bad input, as a careless or hostile user types it: each case fails before any work, in at
most three lines with no traceback, exits non-zero and names what to change.

Every case runs ``main()`` in-process; ``{tmp}`` in an argument is a fresh folder holding a
file ``file`` and a folder ``dir``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from arena.cli import app
from arena.cli.app import main
from arena.cli.base import emit_json

# (id, argv, what the one line must name)
CASES: list[tuple[str, list[str], str]] = [
    # unknown names list the known ones
    ("unknown-attack", ["evaluate", "--attacker", "nope"], "known attacks"),
    ("unknown-defense", ["evaluate", "--attacker", "badnets", "--defender", "nope"], "known"),
    ("unknown-attacker-in-duel", ["duel", "--attacker", "x", "--defender", "strip"], "known"),
    ("pipeline-twice", ["duel", "--attacker", "badnets", "--defender", "strip+strip"], "twice"),
    ("bad-override", ["evaluate", "--attacker", "badnets", "-A", "nope=1"], "nope"),
    # outputs that cannot be written fail before any training
    ("train-out-is-a-folder", ["train", "--attacker", "badnets", "--out", "{tmp}/dir"], "--out"),
    ("train-out-under-a-file", ["train", "--out", "{tmp}/file/m.safetensors"], "--out"),
    ("duel-out-is-a-file", ["duel", "--attacker", "badnets", "--defender", "strip",
                            "--out", "{tmp}/file"], "--out"),
    ("show-triggers-out-is-a-file", ["show-triggers", "--out", "{tmp}/file"], "--out"),
    ("show-defense-out-is-a-file", ["show-defense", "--defender", "strip", "--attacker",
                                    "badnets", "--out", "{tmp}/file"], "--out"),
    # a cache that cannot be written fails before any training, in every command that has one
    ("evaluate-cache", ["evaluate", "--attacker", "badnets", "--cache", "{tmp}/file/c"], "cache"),
    ("train-cache", ["train", "--out", "{tmp}/m.safetensors", "--cache", "{tmp}/file/c"],
     "cache"),
    ("duel-cache", ["duel", "--attacker", "badnets", "--defender", "strip",
                    "--cache", "{tmp}/file/c"], "cache"),
    ("show-triggers-cache", ["show-triggers", "--out", "{tmp}/figs", "--cache", "{tmp}/file/c"],
     "cache"),
    # storages that cannot be opened
    ("duel-storage-under-a-file", ["duel", "--attacker", "badnets", "--defender", "strip",
                                   "--storage", "sqlite:///{tmp}/file/a.db"], "storage"),
    ("duel-storage-unknown-scheme", ["duel", "--attacker", "badnets", "--defender", "strip",
                                     "--storage", "nosuchdb://x"], "storage"),
    # values outside what makes sense, refused before any work (a search range is not a limit)
    ("poison-rate-negative", ["evaluate", "--attacker", "badnets", "-A", "poison_rate=-0.1"],
     "poison_rate"),
    ("poison-rate-above-one", ["evaluate", "--attacker", "badnets", "-A", "poison_rate=2"],
     "poison_rate"),
    ("batch-size-zero", ["evaluate", "--attacker", "badnets", "-T", "batch_size=0"],
     "batch_size"),
    ("patch-size-five", ["evaluate", "--attacker", "badnets", "-A", "size=5"], "size"),
    ("epochs-zero", ["evaluate", "--attacker", "badnets", "-T", "epochs=0"], "epochs"),
    ("lr-inf", ["evaluate", "--attacker", "badnets", "-T", "lr=inf"], "lr"),
    ("lr-nan", ["evaluate", "--attacker", "badnets", "-T", "lr=nan"], "lr"),
    ("overlays-zero", ["evaluate", "--attacker", "badnets", "--defender", "strip",
                       "-D", "overlays=0"], "overlays"),
    ("pipeline-stage-bad-value", ["evaluate", "--attacker", "badnets", "--defender",
                                  "strip+bdmae", "-D", "strip.overlays=0"], "overlays"),
    ("delta-attack-negative", ["evaluate", "--attacker", "badnets", "--delta-attack", "-1"],
     "--delta-attack"),
    ("frr-budget-nan", ["evaluate", "--attacker", "badnets", "--frr-budget", "nan"],
     "--frr-budget"),
    ("duel-rounds-zero", ["duel", "--attacker", "badnets", "--defender", "strip",
                          "--rounds", "0"], "--rounds"),
    ("duel-epsilon-negative", ["duel", "--attacker", "badnets", "--defender", "strip",
                               "--epsilon", "-0.5"], "--epsilon"),
    ("seed-overflow", ["evaluate", "--attacker", "badnets", "--seed", str(2**70)], "--seed"),
    ("seed-negative", ["train", "--out", "{tmp}/m.safetensors", "--seed", "-1"], "--seed"),
    ("missing-option", ["evaluate"], "--attacker"),
    ("unknown-command", ["evaluat"], "invalid choice"),
    # data too small to measure a cell
    ("evaluate-limit", ["evaluate", "--attacker", "badnets", "--limit", "5"], "--limit"),
    ("duel-limit", ["duel", "--attacker", "badnets", "--defender", "strip", "--limit", "5"],
     "--limit"),
    # model files that are not there or not files
    ("defend-missing-model", ["defend", "--model", "{tmp}/none.safetensors", "--defender",
                              "strip"], "arena train"),
    ("defend-model-is-a-folder", ["defend", "--model", "{tmp}/dir", "--defender", "strip"],
     "directory"),
    ("defend-model-is-dev-null", ["defend", "--model", "/dev/null", "--defender", "strip"],
     "regular file"),
    ("defend-cache", ["defend", "--model", "{tmp}/none.safetensors", "--defender", "strip",
                      "--cache", "{tmp}/file/c"], "cache"),
]


@pytest.fixture()
def tmp(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "dir").mkdir()
    return tmp_path


@pytest.mark.parametrize(("argv", "names"), [pytest.param(a, n, id=i) for i, a, n in CASES])
def test_bad_input_fails_first_in_one_line(
    argv: list[str],
    names: str,
    tmp: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp)  # runs/ and the default storage land here
    monkeypatch.delenv("ARENA_DEBUG", raising=False)
    try:
        code = main([a.format(tmp=tmp) for a in argv])
    except SystemExit as done:  # argparse's own checks (types, required options)
        code = done.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert 1 <= len(err) <= 3 and not any("Traceback" in line for line in err), err
    assert err[-1].startswith("arena") and ": error: " in err[-1] and names in err[-1], err
    assert not (tmp / "runs" / "cache" / "badnet").exists()  # nothing was trained


def _boom(self: object, args: object) -> int:
    raise RuntimeError("an unexpected fault\nwith a second line")


def test_an_unexpected_error_is_one_line_and_a_report(
    tmp: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARENA_DEBUG", raising=False)
    monkeypatch.setattr(app.ListCommand, "run", _boom)
    assert main(["list"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error: RuntimeError: an unexpected fault with" in err[0]
    report = Path(err[0].split("the full report is in ")[1].split(" (rerun")[0])
    text = report.read_text()
    assert text.startswith("arena list") and "Traceback" in text and "_boom" in text
    report.unlink()


@pytest.mark.parametrize("how", ["flag-before", "flag-after", "env"])
def test_debug_shows_the_traceback(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARENA_DEBUG", raising=False)
    argv = {"flag-before": ["--debug", "list"], "flag-after": ["list", "--debug"]}.get(how)
    if argv is None:
        monkeypatch.setenv("ARENA_DEBUG", "1")
        argv = ["list"]
    monkeypatch.setattr(app.ListCommand, "run", _boom)
    with pytest.raises(RuntimeError, match="an unexpected fault"):
        main(argv)
    monkeypatch.setattr(app.ListCommand, "run", lambda self, args: 0)
    with pytest.raises(ValueError, match="unknown attack"):
        main(["--debug", "evaluate", "--attacker", "nope"])


def test_json_output_is_always_valid_json(capsys: pytest.CaptureFixture[str]) -> None:
    emit_json({"asr": math.nan, "payoff": math.inf, "rows": [1.0, -math.inf], "ok": 0.5})
    out = capsys.readouterr().out
    assert json.loads(out) == {"asr": None, "payoff": None, "rows": [1.0, None], "ok": 0.5}
    assert "NaN" not in out and "Infinity" not in out
