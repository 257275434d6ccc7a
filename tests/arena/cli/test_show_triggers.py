"""``arena show-triggers``: one PNG with a clean image, its triggered copy and their difference
per registered attack, in the layout of :func:`arena.report.triggers.grid_layout`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

import strategies
from arena.cli.app import main
from arena.data import load_dataset
from arena.report.triggers import COLUMNS, grid_layout, to_pixels
from strategies.attacks import Attack
from strategies.attacks.badnets import BadNets


class Inverts(Attack):
    """A stand-in for an attack another module registers: it inverts the image."""

    name: ClassVar[str] = "inverts"
    summary: ClassVar[str] = "inverts the image"

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return 1.0 - x


def tile(png: Image.Image, layout, row: int, column: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.asarray(png.crop(layout.box(row, column)))


def test_grid_has_a_row_per_registered_attack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(strategies, "ATTACKS", {"badnets": BadNets, "inverts": Inverts})
    argv = ["show-triggers", "--out", str(tmp_path / "figs"), "--limit", "60"]
    assert main([*argv, "--cache", str(tmp_path / "cache")]) == 0
    path = tmp_path / "figs" / "triggers-digits.png"
    assert capsys.readouterr().out.strip() == str(path)

    png = Image.open(path)
    png.load()
    assert png.format == "PNG" and png.mode == "RGB"
    assert json.loads(png.info["Description"]) == ["badnets", "inverts"]
    data = load_dataset("digits", limit=60)
    layout = grid_layout(2, *data.image_shape[1:])
    assert png.size == layout.size and layout.tile_height >= 96 and len(COLUMNS) == 3

    clean = data.test.x[int((data.test.y != 0).nonzero()[0])]  # badnets's target is 0
    expected = to_pixels(clean, layout.scale)
    assert np.array_equal(tile(png, layout, 0, 0), expected)
    assert np.array_equal(tile(png, layout, 1, 1), 255 - expected), "inverts' triggered image"
    diff = tile(png, layout, 0, 2).max(axis=2) > 0  # badnets: a patch in the bottom-right
    rows, cols = diff.any(axis=1).nonzero()[0], diff.any(axis=0).nonzero()[0]
    half = layout.tile_height // 2
    assert rows.min() > half and cols.min() > half and diff.mean() < 0.1


def test_named_attackers_and_shared_fields(tmp_path: Path) -> None:
    argv = ["show-triggers", "--out", str(tmp_path), "--limit", "60", "--image-size", "32"]
    argv += ["--attackers", "sig,pn", "-A", "target=3", "--cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    png = Image.open(tmp_path / "triggers-digits.png")
    assert json.loads(png.info["Description"]) == ["sig", "pn"]
    assert png.size == grid_layout(2, 32, 32).size


def test_unknown_field_or_attack_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show-triggers", "--out", str(tmp_path), "--attackers", "nope"]) == 2
    assert "unknown attack 'nope'" in capsys.readouterr().err
    argv = ["show-triggers", "--out", str(tmp_path), "--attackers", "pn", "-A", "alpha=0.1"]
    assert main(argv) == 2
    assert "no attack drawn has that field" in capsys.readouterr().err
