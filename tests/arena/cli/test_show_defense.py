"""``arena show-defense`` on tiny data: one PNG with one panel per stage's figure, a one-line
message for a defense without panels, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from arena.cli.app import main

pytestmark = pytest.mark.usefixtures("one_thread")


def run(tmp_path: Path, *argv: str) -> list[str]:
    base = ["--out", str(tmp_path / "figs"), "--limit", "150", "--cache", str(tmp_path / "c")]
    return ["show-defense", *argv, *base, "-T", "epochs=5"]


def test_a_pipeline_draws_each_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = run(
        tmp_path,
        "--defender",
        "strip+abs",
        "--attacker",
        "badnets",
        "-D",
        "strip.overlays=8",
        "-D",
        "abs.steps=20",
        "-D",
        "abs.candidates=3",
    )
    assert main(argv) == 0
    path = tmp_path / "figs" / "strip+abs-vs-badnets.png"
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"wrote {path}: 2 panel(s)")
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        titles = json.loads(image.info["Description"])
        assert image.size[0] > 100 and image.size[1] > 100
    assert len(titles) == 2
    assert titles[0].startswith("strip: entropy") and titles[1].startswith("abs: reversed")


def test_neural_cleanse_draws_triggers_and_masks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = run(
        tmp_path,
        "--defender",
        "neural-cleanse",
        "--attacker",
        "badnets",
        "-D",
        "steps=20",
        "-D",
        "unlearn_epochs=1",
    )
    assert main(argv) == 0
    with Image.open(tmp_path / "figs" / "neural-cleanse-vs-badnets.png") as image:
        titles = json.loads(image.info["Description"])
    assert [t.split(" ")[1] for t in titles] == ["trigger", "mask"]
    assert "wrote" in capsys.readouterr().out


def test_a_defense_without_panels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run(tmp_path, "--defender", "none", "--attacker", "badnets")) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "none has no panels" in out[0]
    assert not (tmp_path / "figs").exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--defender", "strip+abs", "--attacker", "badnets", "-D", "overlays=8"], "STAGE.FIELD"),
        (["--defender", "strip", "--attacker", "badnets", "-D", "nope=1"], "'nope'"),
        (["--defender", "strip+nope", "--attacker", "badnets"], "'nope'"),
    ],
)
def test_user_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert main(run(tmp_path, *argv)) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1
    assert lines[0].startswith("arena show-defense: error: ") and needle in lines[0]
