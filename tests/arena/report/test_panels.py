"""Drawing panels into a PNG: a valid image that lists its panels, grown by its rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from arena.report.panels import render_panels
from strategies.defenses import Panel


def panels(images: int) -> list[Panel]:
    return [
        Panel("triggers", "images", torch.rand(images, 3, 16, 16), ("a", "b")),
        Panel("grey", "images", torch.rand(2, 1, 8, 8)),
        Panel(
            "entropy",
            "histogram",
            {"clean": torch.rand(50), "triggered": torch.rand(20) * 0.2},
            labels=("entropy", "threshold"),
            marker=0.1,
        ),
    ]


def test_a_png_that_lists_its_panels(tmp_path: Path) -> None:
    path = render_panels(panels(4), tmp_path / "sub" / "out.png", title="a figure")
    assert path == tmp_path / "sub" / "out.png"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.info["Title"] == "a figure"
        assert json.loads(image.info["Description"]) == ["triggers", "grey", "entropy"]
        small = image.size
    with Image.open(render_panels(panels(25), tmp_path / "big.png", title="t")) as image:
        assert image.size[1] > small[1]  # 25 images take three rows of ten


def test_bad_panels_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no panels"):
        render_panels([], tmp_path / "x.png", title="t")
    odd = Panel("odd", "pie", torch.rand(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown panel kind"):
        render_panels([odd], tmp_path / "x.png", title="t")
