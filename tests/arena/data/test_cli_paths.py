"""Every file loader and every model path, end to end through the command line, in-process.

Each file-based dataset (CIFAR-10 batches, MNIST IDX files, an image folder), written by the
test, is scored by one ``arena evaluate`` cell; each ResNet is trained by ``arena train`` on
tiny data and its file read back by ``arena defend``. The data are small (a few images of each
class in every split, 16x16 pixels) and training is one epoch, so each test takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from arena.cell.result import CELL_KEYS
from arena.cli.app import main
from arena.core.model_files import load_model

pytestmark = pytest.mark.usefixtures("one_thread")

RATES = ("ca", "asr", "sda", "sasr", "far", "frr")


def _evaluate(capsys: pytest.CaptureFixture[str], tmp_path: Path, *data: str) -> dict[str, Any]:
    argv = ["evaluate", "--attacker", "badnets", "--defender", "none", *data, "--image-size",
            "16", "-T", "epochs=1", "--cache", str(tmp_path / "cache"), "--json"]  # fmt: skip
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    assert set(result) == {*CELL_KEYS, "schema_version", "provenance"}
    for key in (*RATES, "payoff"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["frr"] == 0.0 and result["far"] == 1.0  # no defense: everything passes
    assert result["gates"]["cached"] == {"clean_model": False, "badnet": False}
    return result


def test_cifar10_cell(capsys: pytest.CaptureFixture[str], tmp_path: Path, data_files: Any) -> None:
    # 600 training images (60 a class, 6 a class held out for val), 60 test images
    folder = data_files.cifar(tmp_path / "cifar", protocol=2, per_batch=120, test=60)
    _evaluate(capsys, tmp_path, "--dataset", "cifar10", "--data-path", str(folder), "--limit", "60")


def test_mnist_cell(capsys: pytest.CaptureFixture[str], tmp_path: Path, data_files: Any) -> None:
    folder = data_files.mnist(tmp_path / "mnist", train=600, test=60)
    _evaluate(capsys, tmp_path, "--dataset", "mnist", "--data-path", str(folder), "--limit", "60")


def test_image_folder_cell(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data_files: Any
) -> None:
    folder = data_files.folder(tmp_path / "faces", per_class=30)  # 18 / 6 / 6 a class
    _evaluate(capsys, tmp_path, "--dataset", "folder", "--data-path", str(folder), "--limit", "30")


@pytest.mark.parametrize("arch", ["resnet18", "preact-resnet18"])
def test_resnet_trains_and_defends(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, arch: str
) -> None:
    out = tmp_path / f"{arch}.safetensors"
    argv = ["train", "--model", arch, "--attacker", "badnets", "--dataset", "shapes",
            "--image-size", "16", "--limit", "36", "-T", "epochs=1", "--out", str(out),
            "--cache", str(tmp_path / "cache")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"wrote {out}: {arch} on shapes")
    model, header = load_model(out)
    assert model.arch == arch and model.image_shape == (3, 16, 16)
    assert header["data"]["name"] == "shapes" and header["attack"]["name"] == "badnets"

    # The dataset's name and image size come from the file; the limit from the command.
    argv = ["defend", "--model", str(out), "--defender", "none", "--limit", "36", "--json",
            "--cache", str(tmp_path / "cache")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    for key in RATES:
        assert 0.0 <= report[key] <= 1.0, key
    assert report["flagged"] is None and report["frr"] == 0.0
