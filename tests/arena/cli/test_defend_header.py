"""``arena defend`` reads an untrusted header: the data come from the command's options (never
from a path in the file), a bad recorded attack is one line, and so is a model path that is a
folder or no regular file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from arena.cli.app import main
from arena.core.model_files import save_model
from arena.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

BADNETS = {"name": "badnets", "config": {"poison_rate": 0.1, "target": 0}}


def _model_file(tmp_path: Path, header: dict[str, Any], shape: tuple[int, int, int]) -> Path:
    """An untrained small CNN for images of ``shape`` with ``header``, as a model file."""
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    save_model(path, build_model("small-cnn", shape, 3 if shape[1] == 8 else 10), header)
    return path


def _image_folder(root: Path) -> Path:
    for k in range(3):
        (root / f"c{k}").mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (8, 8), (80 * k, 20 * i, 5)).save(root / f"c{k}" / f"{i}.png")
    return root


def _one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    return err.strip()


def _defend(path: Path, *extra: str) -> list[str]:
    return ["defend", "--model", str(path), "--defender", "none", "--json", *extra]


@pytest.mark.parametrize("name", ["folder", "cifar10"])
def test_a_path_in_the_header_is_never_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    secret = _image_folder(tmp_path / "secret")
    header = {"data": {"name": name, "path": str(secret), "image_size": 8, "limit": None}}
    path = _model_file(tmp_path, header, (3, 8, 8))
    line = _one_line(capsys, _defend(path))
    assert "--data-path" in line and str(secret) not in line

    # The user's --data-path is what is read; the header's name and size are its defaults.
    if name == "folder":
        mine = _image_folder(tmp_path / "mine")
        assert main(_defend(path, "--data-path", str(mine))) == 0
        assert 0.0 <= json.loads(capsys.readouterr().out)["ca"] <= 1.0


def test_a_path_in_the_header_of_a_builtin_dataset_is_ignored(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    header = {"data": {"name": "digits", "path": "/etc", "image_size": 16, "limit": 30}}
    path = _model_file(tmp_path, header, (3, 16, 16))
    assert main(_defend(path, "--limit", "30")) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["ca"] <= 1.0


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"name": "imagenet"}, "data.name='imagenet' is not a known dataset"),
        ({"name": "digits", "image_size": -3}, "data.image_size=-3"),
        ({"name": "digits", "image_size": 10**9}, "data.image_size=1000000000"),
        ("digits", "header field data is not an object"),
    ],
)
def test_bad_recorded_data_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: object, match: str
) -> None:
    path = _model_file(tmp_path, {"data": data}, (3, 16, 16))
    line = _one_line(capsys, _defend(path))
    assert match in line and str(path) in line
    # --dataset overrides whatever the header records
    assert main(_defend(path, "--dataset", "digits", "--limit", "30")) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    ("attack", "match"),
    [
        ({**BADNETS, "config": {**BADNETS["config"], "nosuch": 1}}, "no field(s) nosuch"),
        ({**BADNETS, "config": {"poison_rate": 7.5}}, "poison_rate=7.5"),
        ({**BADNETS, "config": {"target": 99}}, "target 99"),
        ({"name": "nosuch-attack", "config": {}}, "unknown attack 'nosuch-attack'"),
        ({"name": "badnets", "config": [1]}, "header field attack is not"),
        (["badnets"], "header field attack is not"),
    ],
)
def test_bad_recorded_attack_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, attack: object, match: str
) -> None:
    header = {"data": {"name": "digits", "image_size": 16}, "attack": attack}
    path = _model_file(tmp_path, header, (3, 16, 16))
    line = _one_line(capsys, _defend(path, "--limit", "30"))
    assert match in line and str(path) in line


def test_model_path_that_is_no_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = _one_line(capsys, _defend(tmp_path))
    assert "is a directory, not a model file" in line and "arena train" not in line
    if Path("/dev/null").exists():
        line = _one_line(capsys, _defend(Path("/dev/null")))
        assert "/dev/null is not a regular file" in line and "--out /dev/null" not in line
    empty = tmp_path / "empty.safetensors"
    empty.touch()
    assert "is empty" in _one_line(capsys, _defend(empty))
