"""Datasets read from files: CIFAR-10 batches, MNIST IDX, image folders and GTSRB .ppm."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from arena.data import DatasetError, Splits, load_dataset

# --- CIFAR-10 ----------------------------------------------------------------------------------

PER_BATCH = 20


def _cifar_batch(start: int, n: int = PER_BATCH) -> dict[bytes, object]:
    """Images whose R plane is their global index ``i``, G plane 255 - i; label i % 10."""
    index = np.arange(start, start + n)
    planes = np.stack([index, 255 - index, np.full(n, 7)], axis=1).astype(np.uint8)
    data = np.repeat(planes, 1024, axis=1)  # (n, 3072): R plane, G plane, B plane
    return {
        b"batch_label": b"tiny batch",
        b"labels": [int(i % 10) for i in index],
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in index],
    }


def _write_cifar(folder: Path, protocol: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(5):
        blob = pickle.dumps(_cifar_batch(k * PER_BATCH), protocol=protocol)
        (folder / f"data_batch_{k + 1}").write_bytes(blob)
    (folder / "test_batch").write_bytes(pickle.dumps(_cifar_batch(200), protocol=protocol))
    return folder


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


def test_cifar10_loads_batches(tmp_path: Path) -> None:
    _check_cifar(load_dataset("cifar10", path=str(_write_cifar(tmp_path))))


def test_cifar10_accepts_parent_folder_and_protocol_5(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "cifar-10-batches-py", protocol=5)
    _check_cifar(load_dataset("cifar10", path=str(tmp_path)))


def test_cifar10_accepts_numpy_1_pickles(tmp_path: Path) -> None:
    """The official batches name ``numpy.core.multiarray``, as numpy 1.x wrote them."""
    _write_cifar(tmp_path, protocol=3)  # GLOBAL opcodes as text lines, no frames
    for path in tmp_path.iterdir():
        blob = path.read_bytes()
        assert b"numpy._core.multiarray\n_reconstruct" in blob
        path.write_bytes(blob.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    _check_cifar(load_dataset("cifar10", path=str(tmp_path)))


def test_cifar10_seed_and_size(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
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
def test_cifar10_refuses_malicious_pickle(tmp_path: Path, call: object) -> None:
    _write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    command = f"touch {marker}" if call is os.system else f"open({str(marker)!r}, 'w')"
    batch = _cifar_batch(0)
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
def test_cifar10_refuses_wrong_content(tmp_path: Path, content: bytes, match: str) -> None:
    _write_cifar(tmp_path)
    (tmp_path / "test_batch").write_bytes(content)
    with pytest.raises(DatasetError, match=match):
        load_dataset("cifar10", path=str(tmp_path))


def test_cifar10_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no CIFAR-10 batches .*data_batch_1..data_batch_5"):
        load_dataset("cifar10", path=str(tmp_path))
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(DatasetError, match="missing data_batch_4"):
        load_dataset("cifar10", path=str(tmp_path))
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset("cifar10", path=str(tmp_path / "nowhere"))


# --- MNIST --------------------------------------------------------------------------------------


def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        blob = gzip.compress(blob)
    path.write_bytes(blob)


def _mnist_split(n: int, start: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.arange(start, start + n)
    images = np.broadcast_to(index[:, None, None], (n, 12, 12)).copy()
    images[:, 0, 0] = 255  # one bright corner, to check orientation
    return images, index % 10


def _write_mnist(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = _mnist_split(50, 0)
    _write_idx(folder / "train-images-idx3-ubyte.gz", images, 2051)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", labels, 2049)
    images, labels = _mnist_split(20, 100)
    _write_idx(folder / "t10k-images-idx3-ubyte", images, 2051)
    _write_idx(folder / "t10k-labels-idx1-ubyte", labels, 2049)
    return folder


def test_mnist_loads_plain_and_gzipped_idx(tmp_path: Path) -> None:
    splits = load_dataset("mnist", path=str(_write_mnist(tmp_path)))
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


def test_mnist_wrong_magic(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    images, _ = _mnist_split(20, 100)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", images, 2049)
    with pytest.raises(DatasetError, match="magic number 2049, expected 2051"):
        load_dataset("mnist", path=str(tmp_path))


def test_mnist_truncated_and_mismatched(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset("mnist", path=str(tmp_path))
    _write_mnist(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(19), 2049)
    with pytest.raises(DatasetError, match="20 images but 19 labels"):
        load_dataset("mnist", path=str(tmp_path))


def test_mnist_missing_file(tmp_path: Path) -> None:
    _write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="no train-labels-idx1-ubyte"):
        load_dataset("mnist", path=str(tmp_path))


# --- image folders and GTSRB --------------------------------------------------------------------

COLOURS = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]


def _write_folder(root: Path, per_class: int = 10, ext: str = ".png", mode: str = "RGB") -> Path:
    """Class k holds solid images of colour ``COLOURS[k]`` in two sizes."""
    for k, colour in enumerate(COLOURS):
        folder = root / f"class_{k}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            size = (20, 24) if i % 2 else (40, 40)
            image = Image.new("RGB", size, colour)
            (image.convert("L") if mode == "L" else image).save(folder / f"{i:03d}{ext}")
    return root


def _check_colours(splits: Splits) -> None:
    for part in (splits.train, splits.val, splits.test):
        expected = torch.tensor(COLOURS, dtype=torch.float32)[part.y] / 255
        assert torch.allclose(part.x.mean(dim=(2, 3)), expected, atol=1e-3)


def test_folder_split_and_resize(tmp_path: Path) -> None:
    splits = load_dataset("folder", path=str(_write_folder(tmp_path)))
    assert splits.image_shape == (3, 32, 32) and splits.num_classes == 3
    for part, per_class in ((splits.train, 6), (splits.val, 2), (splits.test, 2)):
        assert torch.bincount(part.y).tolist() == [per_class] * 3
    _check_colours(splits)
    sized = load_dataset("folder", path=str(tmp_path), image_size=8, limit=4)
    assert sized.image_shape == (3, 8, 8) and len(sized.train) == 4
    _check_colours(sized)


def test_folder_seeds(tmp_path: Path) -> None:
    for k, colour in enumerate(COLOURS):  # a distinct image per file, to tell splits apart
        (tmp_path / f"c{k}").mkdir()
        for i in range(10):
            Image.new("RGB", (8, 8), (colour[0], 20 * i, k)).save(tmp_path / f"c{k}" / f"{i}.png")
    a = load_dataset("folder", path=str(tmp_path), seed=0)
    assert torch.equal(a.test.x, load_dataset("folder", path=str(tmp_path), seed=0).test.x)
    assert not torch.equal(a.test.x, load_dataset("folder", path=str(tmp_path), seed=1).test.x)


def test_folder_grayscale_stays_one_channel(tmp_path: Path) -> None:
    _write_folder(tmp_path, mode="L")
    assert load_dataset("folder", path=str(tmp_path)).image_shape == (1, 32, 32)
    Image.new("RGB", (9, 9), (1, 2, 3)).save(tmp_path / "class_0" / "colour.png")
    assert load_dataset("folder", path=str(tmp_path)).image_shape == (3, 32, 32)


def test_folder_train_test_layout(tmp_path: Path) -> None:
    _write_folder(tmp_path / "train", per_class=10)
    _write_folder(tmp_path / "test", per_class=4)
    splits = load_dataset("folder", path=str(tmp_path))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (27, 3, 12)
    _check_colours(splits)


def test_gtsrb_ppm_layout(tmp_path: Path) -> None:
    images = tmp_path / "GTSRB" / "Final_Training" / "Images"
    for k, colour in enumerate(COLOURS):
        folder = images / f"{k:05d}"
        folder.mkdir(parents=True)
        (folder / f"GT-{k:05d}.csv").write_text("Filename;Width;Height\n")
        for i in range(5):
            Image.new("RGB", (30 + i, 31), colour).save(folder / f"00000_{i:05d}.ppm")
    splits = load_dataset("gtsrb", path=str(tmp_path), image_size=24)
    assert splits.name == "gtsrb" and splits.num_classes == 3
    assert splits.image_shape == (3, 24, 24) and len(splits.test) == 3
    _check_colours(splits)


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
