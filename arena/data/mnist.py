"""MNIST (and anything in its layout, such as Fashion-MNIST) from IDX files.

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian int32 magic
number whose third byte is the element type (0x08, unsigned byte) and fourth the number of
dimensions, then one big-endian int32 per dimension, then the elements. Images are magic 2051
(0x00000803: N, rows, cols), labels magic 2049 (0x00000801: N). Files may be gzipped.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import torch

from arena.data.common import DatasetError, check_options, finish, split_train_val
from arena.data.splits import Split, Splits

logger = logging.getLogger(__name__)

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
NUM_CLASSES = 10
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EXPECTED = (
    "expected train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
    "t10k-labels-idx1-ubyte (each may end in .gz)"
)


def _find(root: Path, name: str) -> Path:
    """``root/name``, also as ``name.gz`` or with the ``.idx`` spelling some mirrors use."""
    dotted = name.replace("-idx", ".idx")
    for folder in (root, root / "raw", root / "MNIST" / "raw"):
        for candidate in (name, f"{name}.gz", dotted, f"{dotted}.gz"):
            if (folder / candidate).is_file():
                return folder / candidate
    raise DatasetError(f"no {name} (or {name}.gz) in {root}; {EXPECTED}")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array stored in IDX file ``path``, whose magic number must be ``magic``."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except OSError as error:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"cannot read IDX file {path} ({error}); {EXPECTED}") from error
    ndim = magic & 0xFF
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise DatasetError(f"{path} is too short for an IDX header ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DatasetError(
            f"{path} has magic number {found}, expected {magic} "
            f"({'images' if magic == IMAGES_MAGIC else 'labels'} of unsigned bytes); {EXPECTED}"
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise DatasetError(
            f"{path} holds {len(raw) - header} bytes of data but its header says {shape} "
            f"({size} bytes); the file is truncated or not IDX"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_split(root: Path, which: str) -> Split:
    """The ``train`` or ``test`` (t10k) images (N, 1, H, W) in [0, 1] and labels."""
    images_name, labels_name = FILES[which]
    images = read_idx(_find(root, images_name), IMAGES_MAGIC)
    labels = read_idx(_find(root, labels_name), LABELS_MAGIC)
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"MNIST {which} split has {images.shape[0]} images but {labels.shape[0]} labels; "
            f"{EXPECTED}"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DatasetError(f"MNIST {which} labels must be 0..9, found {labels.max()}")
    x = torch.from_numpy(images.copy()).unsqueeze(1).float().div_(255.0)
    return Split(x, torch.from_numpy(labels.astype(np.int64)))


def load_mnist(
    path: str | Path, *, seed: int = 0, image_size: int | None = None, limit: int | None = None
) -> Splits:
    """MNIST, 1 channel: train less a seeded, stratified 10% val; test from the t10k files."""
    check_options(image_size=image_size, limit=limit)
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"MNIST path {root} is not a folder; {EXPECTED}")
    splits = split_train_val(
        "mnist",
        _read_split(root, "train"),
        _read_split(root, "test"),
        num_classes=NUM_CLASSES,
        seed=seed,
    )
    return finish(splits, seed=seed, image_size=image_size, limit=limit)
