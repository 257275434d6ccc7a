"""Model files: a safetensors round trip, and every file Arena must refuse without running it."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import torch

from arena.core import model_files
from arena.core.model_files import (
    FORMAT,
    ModelFileError,
    load_model,
    model_to_bytes,
    save_model,
)
from arena.models import ArenaNet, build_model

SHAPE = (3, 16, 16)


def _net(classes: int = 10, seed: int = 0) -> ArenaNet:
    torch.manual_seed(seed)
    net = build_model("small-cnn", SHAPE, classes)
    net.normalize.set([0.4, 0.5, 0.6], [0.2, 0.25, 0.3])  # buffers must travel too
    return net.eval()


class _Payload:
    """Unpickling this object creates ``marker``; Arena must never unpickle it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


class _ShellPayload(_Payload):
    def __reduce__(self) -> tuple[object, tuple[str]]:  # type: ignore[override]
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_keeps_outputs_and_header(tmp_path: Path) -> None:
    net = _net()
    header = {"attack": {"name": "badnets", "config": {"size": 0.2}}, "seed": 3, "note": "x"}
    path = tmp_path / "m.safetensors"
    save_model(path, net, header)
    loaded, meta = load_model(path)
    x = torch.rand(4, *SHAPE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)
    assert not loaded.training
    assert meta["format"] == FORMAT
    assert meta["model"] == {"arch": "small-cnn", "image_shape": list(SHAPE), "num_classes": 10}
    for key, value in header.items():
        assert meta[key] == value
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_header_length_that_looks_like_pickle_still_loads(tmp_path: Path) -> None:
    """A safetensors file starts with its header's length (u64 LE); one in 256 lengths start
    with 0x80, the first byte of a pickle, and such a file must still load."""
    first_bytes = b"\x80"
    net = _net()
    for pad in range(2048):
        data = model_to_bytes(net, {"pad": "x" * pad})
        if data.startswith(first_bytes):
            break
    else:
        pytest.fail(f"no padding gives a header length starting with {first_bytes!r}")
    path = tmp_path / "m.safetensors"
    path.write_bytes(data)
    loaded, meta = load_model(path)
    assert meta["pad"] == "x" * pad
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda obj, p: p.write_bytes(pickle.dumps(obj)), id="pickle"),
        pytest.param(lambda obj, p: p.write_bytes(pickle.dumps(obj, protocol=0)), id="pickle-0"),
        pytest.param(lambda obj, p: torch.save({"state": obj}, p), id="torch-save"),
        pytest.param(
            lambda obj, p: torch.save({"state": obj}, p, _use_new_zipfile_serialization=False),
            id="torch-save-legacy",
        ),
    ],
)
@pytest.mark.parametrize("payload", [_Payload, _ShellPayload])
def test_pickles_are_refused_and_never_run(
    tmp_path: Path, write: object, payload: type[_Payload]
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    write(payload(marker), path)  # type: ignore[operator]
    assert path.stat().st_size > 0 and not marker.exists()  # writing does not run the payload
    refused = "can run code when loaded|not an Arena safetensors"  # pickles of protocol 0 too
    with pytest.raises(ModelFileError, match=refused) as err:
        load_model(path)
    assert not marker.exists()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("raw", [b"\x80\x04junk", b"PK\x03\x04junk"])
def test_pickle_and_zip_magic_named_in_message(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(raw)
    with pytest.raises(ModelFileError, match="pickle or torch.save"):
        load_model(path)


@pytest.mark.parametrize(
    "metadata",
    [None, {"other": "1"}, {"arena": "not json"}, {"arena": json.dumps([1, 2])}],
    ids=["no-metadata", "no-arena-key", "bad-json", "not-an-object"],
)
def test_safetensors_without_arena_header_refused(tmp_path: Path, metadata: object) -> None:
    path = tmp_path / "plain.safetensors"
    tensors = {k: v.contiguous() for k, v in _net().state_dict().items()}
    path.write_bytes(safetensors.torch.save(tensors, metadata=metadata))  # type: ignore[arg-type]
    with pytest.raises(ModelFileError, match="arena"):
        load_model(path)


def _forge(tmp_path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, object]) -> Path:
    path = tmp_path / "forged.safetensors"
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    path.write_bytes(safetensors.torch.save(tensors, metadata={"arena": json.dumps(meta)}))
    return path


def test_wrong_format_and_missing_model_refused(tmp_path: Path) -> None:
    tensors = _net().state_dict()
    model = {"arch": "small-cnn", "image_shape": list(SHAPE), "num_classes": 10}
    with pytest.raises(ModelFileError, match="format"):
        load_model(_forge(tmp_path, tensors, {"format": "arena-model/0", "model": model}))
    with pytest.raises(ModelFileError, match="'model'"):
        load_model(_forge(tmp_path, tensors, {"format": FORMAT}))
    with pytest.raises(ModelFileError, match="model.arch='x' is not a known architecture"):
        load_model(_forge(tmp_path, tensors, {"format": FORMAT, "model": {**model, "arch": "x"}}))


def test_header_class_count_mismatch_named(tmp_path: Path) -> None:
    seven = _net(classes=7).state_dict()
    meta = {
        "format": FORMAT,
        "model": {"arch": "small-cnn", "image_shape": list(SHAPE), "num_classes": 10},
    }
    with pytest.raises(ModelFileError) as err:
        load_model(_forge(tmp_path, seven, meta))
    message = str(err.value)
    assert "do not match" in message and "shape" in message
    assert "(7" in message and "(10" in message  # both shapes of the head tensor


def test_missing_and_extra_tensors_named(tmp_path: Path) -> None:
    net = _net()
    meta = {"format": FORMAT, "model": net.describe()}
    tensors = dict(net.state_dict())
    removed = sorted(tensors)[-1]
    del tensors[removed]
    with pytest.raises(ModelFileError, match=f"missing {removed}"):
        load_model(_forge(tmp_path, tensors, meta))
    tensors = {**net.state_dict(), "stages.extra.weight": torch.zeros(2)}
    with pytest.raises(ModelFileError, match="unexpected stages.extra.weight"):
        load_model(_forge(tmp_path, tensors, meta))


@pytest.mark.parametrize("keep", [4, 0.5, -8])
def test_truncated_file_refused(tmp_path: Path, keep: float) -> None:
    data = model_to_bytes(_net())
    cut = int(keep * len(data)) if isinstance(keep, float) else keep
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[:cut])
    with pytest.raises(ModelFileError, match="too short|not an Arena|corrupt|holds only"):
        load_model(path)


def test_missing_path_says_how_to_make_one(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.safetensors"
    with pytest.raises(ModelFileError, match="arena train") as err:
        load_model(path)
    assert str(path) in str(err.value)


def test_directory_empty_file_and_device_say_what_they_are(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=f"{tmp_path} is a directory, not a model file"):
        load_model(tmp_path)
    empty = tmp_path / "empty.safetensors"
    empty.touch()
    with pytest.raises(ModelFileError, match="is empty, not a model file"):
        load_model(empty)
    if Path("/dev/null").exists():
        with pytest.raises(ModelFileError, match="/dev/null is not a regular file") as err:
            load_model("/dev/null")
        assert "--out" not in str(err.value)


GOOD_SPEC = {"arch": "small-cnn", "image_shape": list(SHAPE), "num_classes": 10}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"arch": "nosuch"}, "model.arch='nosuch' is not a known architecture"),
        ({"arch": ["small-cnn"]}, "model.arch="),
        ({"num_classes": 10**12}, "model.num_classes=1000000000000 is not an integer from 2"),
        ({"num_classes": 1e12}, "model.num_classes=1000000000000.0"),
        ({"num_classes": True}, "model.num_classes=True"),
        ({"num_classes": 1}, "model.num_classes=1 "),
        ({"num_classes": "10"}, "model.num_classes='10'"),
        ({"image_shape": [3, -16, 16]}, r"model.image_shape=\[3, -16, 16\]"),
        ({"image_shape": [3, 16]}, r"model.image_shape=\[3, 16\]"),
        ({"image_shape": [2, 16, 16]}, "channels 1 or 3"),
        ({"image_shape": [3, 16, 4096]}, "sides from 4 to 1024"),
        ({"image_shape": [3, 16.0, 16]}, "model.image_shape="),
        ({"image_shape": "3x16x16"}, "model.image_shape="),
        ({"arch": "cla-net", "image_shape": [3, 8, 8]}, "at least 16x16"),
        ({"arch": "deepid", "image_shape": [3, 1024, 1024]}, "but the file holds only"),
    ],
)
def test_header_bounds_checked_before_any_allocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, object], match: str
) -> None:
    """Every field of the header's network is held to its bounds before a tensor is made:
    a failure is one line naming the file and the field, and no network is built."""
    built: list[object] = []
    real_build = model_files.build_model

    def spy(*args: object) -> ArenaNet:
        model = real_build(*args)  # type: ignore[arg-type]
        built.append(next(model.parameters()).device)
        return model

    monkeypatch.setattr(model_files, "build_model", spy)
    path = _forge(
        tmp_path, _net().state_dict(), {"format": FORMAT, "model": {**GOOD_SPEC, **change}}
    )
    with pytest.raises(ModelFileError, match=match) as err:
        load_model(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert all(device == torch.device("meta") for device in built), built


def test_state_larger_than_the_bound_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_files, "MAX_STATE_BYTES", 1000)
    path = tmp_path / "m.safetensors"
    save_model(path, _net())
    with pytest.raises(ModelFileError, match="more than the 1000 a model file may hold"):
        load_model(path)


def test_file_larger_than_the_bound_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_files, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "m.safetensors"
    save_model(path, _net())
    with pytest.raises(ModelFileError, match="of the largest model file"):
        load_model(path)
