"""Fixtures of the dataset tests: tiny files in each on-disk layout Arena reads, written by the
test itself (CIFAR-10 python batches, MNIST IDX files, image folders)."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


class DataFiles:
    """Writers of dataset files (a fixture, since test modules cannot import this one)."""

    COLOURS = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]
    """Image-folder class ``k`` is solid ``COLOURS[k]``."""

    @staticmethod
    def cifar_batch(start: int, n: int = 20) -> dict[bytes, object]:
        """Images whose R plane is their global index ``i`` (mod 256), G plane 255 - that;
        label ``i % 10``."""
        index = np.arange(start, start + n)
        planes = np.stack([index % 256, 255 - index % 256, np.full(n, 7)], axis=1)
        data = np.repeat(planes.astype(np.uint8), 1024, axis=1)  # (n, 3072): R, G, B planes
        return {
            b"batch_label": b"tiny batch",
            b"labels": [int(i % 10) for i in index],
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in index],
        }

    @staticmethod
    def cifar(folder: Path, protocol: int = 4, per_batch: int = 20, test: int = 20) -> Path:
        """The six CIFAR-10 batches in ``folder``: five of ``per_batch`` images, then a test
        batch of ``test`` images numbered from 200."""
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(5):
            batch = DataFiles.cifar_batch(k * per_batch, per_batch)
            (folder / f"data_batch_{k + 1}").write_bytes(pickle.dumps(batch, protocol=protocol))
        batch = DataFiles.cifar_batch(200, test)
        (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
        return folder

    @staticmethod
    def idx(path: Path, array: np.ndarray, magic: int) -> None:
        """``array`` as an IDX file (gzipped when ``path`` ends in .gz)."""
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
        blob = header + array.astype(np.uint8).tobytes()
        if path.suffix == ".gz":
            blob = gzip.compress(blob)
        path.write_bytes(blob)

    @staticmethod
    def mnist_split(n: int, start: int, side: int = 12) -> tuple[np.ndarray, np.ndarray]:
        """``n`` images whose pixels hold their index (mod 256), one bright corner; labels
        ``index % 10``."""
        index = np.arange(start, start + n)
        images = np.broadcast_to(index[:, None, None] % 256, (n, side, side)).copy()
        images[:, 0, 0] = 255  # one bright corner, to check orientation
        return images, index % 10

    @staticmethod
    def mnist(folder: Path, train: int = 50, test: int = 20) -> Path:
        """MNIST's four files in ``folder``: gzipped train files, plain t10k files."""
        folder.mkdir(parents=True, exist_ok=True)
        images, labels = DataFiles.mnist_split(train, 0)
        DataFiles.idx(folder / "train-images-idx3-ubyte.gz", images, 2051)
        DataFiles.idx(folder / "train-labels-idx1-ubyte.gz", labels, 2049)
        images, labels = DataFiles.mnist_split(test, 100)
        DataFiles.idx(folder / "t10k-images-idx3-ubyte", images, 2051)
        DataFiles.idx(folder / "t10k-labels-idx1-ubyte", labels, 2049)
        return folder

    @staticmethod
    def folder(root: Path, per_class: int = 10, ext: str = ".png", mode: str = "RGB") -> Path:
        """Class folders ``class_k`` of solid images of colour ``COLOURS[k]`` in two sizes."""
        for k, colour in enumerate(DataFiles.COLOURS):
            folder = root / f"class_{k}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                size = (20, 24) if i % 2 else (40, 40)
                image = Image.new("RGB", size, colour)
                (image.convert("L") if mode == "L" else image).save(folder / f"{i:03d}{ext}")
        return root


@pytest.fixture(scope="session")
def data_files() -> type[DataFiles]:
    return DataFiles

