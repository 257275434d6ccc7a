"""Datasets read from files: CIFAR-10 batches, MNIST IDX, image folders and GTSRB .ppm."""

from __future__ import annotations

import codecs
import os
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import arena.data.common
import arena.data.folder
from arena.data import DatasetError, Splits, load_dataset
from arena.data.common import resize_images

# --- CIFAR-10 ----------------------------------------------------------------------------------


def _check_cifar(splits: Splits) -> None:
    assert splits.image_shape == (3, 32, 32) and splits.num_classes == 10
    assert (len(splits.train), len(splits.val), len(splits.test)) == (90, 10, 20)
    train_ids = torch.cat([splits.train.x, splits.val.x])[:, 0, 0, 0] * 255
    ids = train_ids.round().long()
    assert sorted(ids.tolist()) == list(range(100)), "every image once, in train or val"
    green = torch.cat([splits.train.x, splits.val.x])[:, 1, 5, 5] * 255
    assert torch.allclose(green, 255 - ids.float(), atol=1e-3), "channel planes in order"
    assert torch.equal(torch.cat([splits.train.y, splits.val.y]), ids % 10)
    assert set(splits.val.y.tolist()) == set(range(10)), "val is stratified"
    assert (splits.test.x[:, 0, 0, 0] * 255).round().long().tolist() == list(range(200, 220))


def test_cifar10_loads_batches(tmp_path: Path, data_files: Any) -> None:
    _check_cifar(load_dataset("cifar10", path=str(data_files.cifar(tmp_path))))


def test_cifar10_accepts_parent_folder_and_protocol_5(tmp_path: Path, data_files: Any) -> None:
    data_files.cifar(tmp_path / "cifar-10-batches-py", protocol=5)
    _check_cifar(load_dataset("cifar10", path=str(tmp_path)))


def test_cifar10_accepts_numpy_1_pickles(tmp_path: Path, data_files: Any) -> None:
    """The official batches name ``numpy.core.multiarray``, as numpy 1.x wrote them."""
    data_files.cifar(tmp_path, protocol=3)  # GLOBAL opcodes as text lines, no frames
    for path in tmp_path.iterdir():
        blob = path.read_bytes()
        assert b"numpy._core.multiarray\n_reconstruct" in blob
        path.write_bytes(blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    _check_cifar(load_dataset("cifar10", path=str(tmp_path)))


@pytest.mark.parametrize("protocol", [0, 2])
def test_cifar10_accepts_bytes_pickled_as_latin1_text(
    tmp_path: Path, data_files: Any, protocol: int
) -> None:
    """Python 3 writes bytes at protocols 0 to 2 as ``_codecs.encode(text, "latin1")``, and
    empty bytes as ``bytes()``; a batch re-pickled so still loads."""
    data_files.cifar(tmp_path, protocol=protocol)
    batch = data_files.cifar_batch(0)
    batch[b"batch_label"] = b""
    blob = pickle.dumps(batch, protocol=protocol)
    assert b"_codecs" in blob and b"bytes" in blob
    (tmp_path / "data_batch_1").write_bytes(blob)
    _check_cifar(load_dataset("cifar10", path=str(tmp_path)))


class _Encoded:
    """Pickles as a call of ``codecs.encode`` with arguments other than latin-1 text."""

    def __init__(self, *args: object) -> None:
        self.args = args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (codecs.encode, self.args)


@pytest.mark.parametrize(
    "args", [("abc", "utf-16"), ("abc", "rot13"), (b"abc", "hex"), ("\u20ac", "latin1"), (1,)]
)
def test_cifar10_refuses_other_codec_calls(
    tmp_path: Path, data_files: Any, args: tuple[object, ...]
) -> None:
    data_files.cifar(tmp_path)
    batch = data_files.cifar_batch(0)
    batch[b"batch_label"] = _Encoded(*args)
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DatasetError, match="refused to unpickle .*data_batch_2.*bytes") as info:
        load_dataset("cifar10", path=str(tmp_path))
    assert "\n" not in str(info.value)


def test_cifar10_seed_and_size(tmp_path: Path, data_files: Any) -> None:
    data_files.cifar(tmp_path)
    a = load_dataset("cifar10", path=str(tmp_path), seed=0)
    b = load_dataset("cifar10", path=str(tmp_path), seed=0)
    c = load_dataset("cifar10", path=str(tmp_path), seed=1)
    assert torch.equal(a.val.x, b.val.x) and not torch.equal(a.val.x, c.val.x)
    small = load_dataset("cifar10", path=str(tmp_path), image_size=16, limit=30)
    assert small.image_shape == (3, 16, 16)
    assert (len(small.train), len(small.val), len(small.test)) == (30, 10, 20)


class _Evil:
    def __init__(self, command: str, call: object) -> None:
        self.command, self.call = command, call

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (self.call, (self.command,))


@pytest.mark.parametrize("call", [os.system, eval], ids=["os.system", "eval"])
def test_cifar10_refuses_malicious_pickle(tmp_path: Path, call: object, data_files: Any) -> None:
    data_files.cifar(tmp_path)
    marker = tmp_path / "pwned"
    command = f"touch {marker}" if call is os.system else f"open({str(marker)!r}, 'w')"
    batch = data_files.cifar_batch(0)
    batch[b"data"] = _Evil(command, call)
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DatasetError, match="refused to unpickle") as info:
        load_dataset("cifar10", path=str(tmp_path))
    assert "data_batch_3" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (pickle.dumps([1, 2, 3]), "not a CIFAR-10 batch"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "3072"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}), "uint8"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}), "0..9"),
        (b"\x80\x04 this is not a pickle", "not a readable pickle"),
    ],
)
def test_cifar10_refuses_wrong_content(
    tmp_path: Path, content: bytes, match: str, data_files: Any
) -> None:
    data_files.cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(content)
    with pytest.raises(DatasetError, match=match):
        load_dataset("cifar10", path=str(tmp_path))


def test_cifar10_missing_files(tmp_path: Path, data_files: Any) -> None:
    with pytest.raises(DatasetError, match="no CIFAR-10 batches .*data_batch_1..data_batch_5"):
        load_dataset("cifar10", path=str(tmp_path))
    data_files.cifar(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(DatasetError, match="missing data_batch_4"):
        load_dataset("cifar10", path=str(tmp_path))
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset("cifar10", path=str(tmp_path / "nowhere"))


# --- MNIST --------------------------------------------------------------------------------------


def test_mnist_loads_plain_and_gzipped_idx(tmp_path: Path, data_files: Any) -> None:
    splits = load_dataset("mnist", path=str(data_files.mnist(tmp_path)))
    assert splits.image_shape == (1, 12, 12) and splits.num_classes == 10
    assert len(splits.train) + len(splits.val) == 50 and len(splits.test) == 20
    assert 2 <= len(splits.val) <= 8  # 10% of 5 per class: 0 or 1 per class, 5 expected
    pool = torch.cat([splits.train.x, splits.val.x])
    ids = (pool[:, 0, 5, 5] * 255).round().long()
    assert sorted(ids.tolist()) == list(range(50))
    assert torch.equal(torch.cat([splits.train.y, splits.val.y]), ids % 10)
    assert torch.all(pool[:, 0, 0, 0] == 1.0) and torch.all(pool[:, 0, 0, 1] < 1.0)
    assert torch.equal(splits.test.y, torch.arange(100, 120) % 10)
    assert load_dataset("mnist", path=str(tmp_path), image_size=16).image_shape == (1, 16, 16)


def test_mnist_wrong_magic(tmp_path: Path, data_files: Any) -> None:
    data_files.mnist(tmp_path)
    images, _ = data_files.mnist_split(20, 100)
    data_files.idx(tmp_path / "t10k-images-idx3-ubyte", images, 2049)
    with pytest.raises(DatasetError, match="magic number 2049, expected 2051"):
        load_dataset("mnist", path=str(tmp_path))


def test_mnist_truncated_and_mismatched(tmp_path: Path, data_files: Any) -> None:
    data_files.mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset("mnist", path=str(tmp_path))
    data_files.mnist(tmp_path)
    data_files.idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(19), 2049)
    with pytest.raises(DatasetError, match="20 images but 19 labels"):
        load_dataset("mnist", path=str(tmp_path))


def test_mnist_missing_file(tmp_path: Path, data_files: Any) -> None:
    data_files.mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="no train-labels-idx1-ubyte"):
        load_dataset("mnist", path=str(tmp_path))


# --- image folders and GTSRB --------------------------------------------------------------------


def _check_colours(splits: Splits, colours: list[tuple[int, int, int]]) -> None:
    for part in (splits.train, splits.val, splits.test):
        expected = torch.tensor(colours, dtype=torch.float32)[part.y] / 255
        assert torch.allclose(part.x.mean(dim=(2, 3)), expected, atol=1e-3)


def test_folder_split_and_resize(tmp_path: Path, data_files: Any) -> None:
    splits = load_dataset("folder", path=str(data_files.folder(tmp_path)))
    assert splits.image_shape == (3, 32, 32) and splits.num_classes == 3
    for part, per_class in ((splits.train, 6), (splits.val, 2), (splits.test, 2)):
        assert torch.bincount(part.y).tolist() == [per_class] * 3
    _check_colours(splits, data_files.COLOURS)
    sized = load_dataset("folder", path=str(tmp_path), image_size=8, limit=4)
    assert sized.image_shape == (3, 8, 8) and len(sized.train) == 4
    _check_colours(sized, data_files.COLOURS)


def test_folder_seeds(tmp_path: Path, data_files: Any) -> None:
    for k, colour in enumerate(
        data_files.COLOURS
    ):  # a distinct image per file, to tell splits apart
        (tmp_path / f"c{k}").mkdir()
        for i in range(10):
            Image.new("RGB", (8, 8), (colour[0], 20 * i, k)).save(tmp_path / f"c{k}" / f"{i}.png")
    a = load_dataset("folder", path=str(tmp_path), seed=0)
    assert torch.equal(a.test.x, load_dataset("folder", path=str(tmp_path), seed=0).test.x)
    assert not torch.equal(a.test.x, load_dataset("folder", path=str(tmp_path), seed=1).test.x)


def test_folder_grayscale_stays_one_channel(tmp_path: Path, data_files: Any) -> None:
    data_files.folder(tmp_path, mode="L")
    assert load_dataset("folder", path=str(tmp_path)).image_shape == (1, 32, 32)
    Image.new("RGB", (9, 9), (1, 2, 3)).save(tmp_path / "class_0" / "colour.png")
    assert load_dataset("folder", path=str(tmp_path)).image_shape == (3, 32, 32)


def test_folder_train_test_layout(tmp_path: Path, data_files: Any) -> None:
    data_files.folder(tmp_path / "train", per_class=10)
    data_files.folder(tmp_path / "test", per_class=4)
    splits = load_dataset("folder", path=str(tmp_path))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (27, 3, 12)
    _check_colours(splits, data_files.COLOURS)


def test_gtsrb_ppm_layout(tmp_path: Path, data_files: Any) -> None:
    images = tmp_path / "GTSRB" / "Final_Training" / "Images"
    for k, colour in enumerate(data_files.COLOURS):
        folder = images / f"{k:05d}"
        folder.mkdir(parents=True)
        (folder / f"GT-{k:05d}.csv").write_text("Filename;Width;Height\n")
        for i in range(5):
            Image.new("RGB", (30 + i, 31), colour).save(folder / f"00000_{i:05d}.ppm")
    splits = load_dataset("gtsrb", path=str(tmp_path), image_size=24)
    assert splits.name == "gtsrb" and splits.num_classes == 3
    assert splits.image_shape == (3, 24, 24) and len(splits.test) == 3
    _check_colours(splits, data_files.COLOURS)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset("folder", path=str(tmp_path / "missing"))
    (tmp_path / "only").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "only" / "a.png")
    with pytest.raises(DatasetError, match="need at least 2"):
        load_dataset("folder", path=str(tmp_path))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="empty holds no images"):
        load_dataset("folder", path=str(tmp_path))
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot read image .*broken.png"):
        load_dataset("folder", path=str(tmp_path))


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels, with no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body).to_bytes(4, "big")
        return len(body).to_bytes(4, "big") + kind + body + crc

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("width", "height", "match"),
    [(100_000, 100_000, "too large to read"), (8192, 8192, "claims 8192x8192 pixels")],
    ids=["decompression-bomb", "over-arena-bound"],
)
def test_folder_refuses_huge_images_from_their_header(
    tmp_path: Path, data_files: Any, width: int, height: int, match: str
) -> None:
    """An image whose header claims too many pixels is one line naming it, never decoded."""
    data_files.folder(tmp_path, per_class=4)
    bomb = tmp_path / "class_1" / "bomb.png"
    bomb.write_bytes(_png_header(width, height))
    with pytest.raises(DatasetError, match=match) as info:
        load_dataset("folder", path=str(tmp_path), image_size=8)
    assert str(bomb) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["cifar10", "mnist", "folder"])
def test_file_loaders_limit_before_resizing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data_files: Any, name: str
) -> None:
    """With ``limit``, no file loader resizes more images than it keeps."""
    sizes: list[int] = []

    def spy(x: torch.Tensor, size: int) -> torch.Tensor:
        sizes.append(int(x.shape[0]))
        return resize_images(x, size)

    for module in (arena.data.common, arena.data.folder):
        monkeypatch.setattr(module, "resize_images", spy)
    write = {"cifar10": data_files.cifar, "mnist": data_files.mnist, "folder": data_files.folder}
    write[name](tmp_path)
    splits = load_dataset(name, path=str(tmp_path), image_size=40, limit=3)
    assert splits.image_shape[1:] == (40, 40) and len(splits.train) == 3
    assert sizes and max(sizes) <= 3, sizes
