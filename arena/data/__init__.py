"""The datasets the game runs on, by name, each loaded as train / val / test tensors.

``load_dataset(name)`` looks the name up in :data:`DATASETS`. Built in and offline: ``digits``
(the default) and ``shapes``. From standard files on disk, given ``path``: ``cifar10``,
``mnist``, ``gtsrb`` and ``folder``. Every bad input raises :class:`DatasetError` with a
one-line message naming the problem and the expected layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from arena.core.config import SEED, check_option
from arena.data.cifar10 import load_cifar10
from arena.data.common import DatasetError, check_options
from arena.data.digits import load_digits
from arena.data.folder import load_folder, load_gtsrb
from arena.data.mnist import load_mnist
from arena.data.shapes import load_shapes, shapes_images
from arena.data.splits import Split, Splits

__all__ = [
    "DATASETS",
    "DataRef",
    "DEFAULT_DATASET",
    "DatasetError",
    "DatasetSpec",
    "Split",
    "Splits",
    "load_dataset",
    "register_dataset",
    "shapes_images",
]

Loader = Callable[[Path | None, int, int | None, int | None], Splits]
"""``loader(path, seed, image_size, limit)``; built-in datasets ignore ``path``."""


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its name, loader, one-line description, and whether it reads files."""

    name: str
    loader: Loader
    description: str
    needs_path: bool


def _digits(path: Path | None, seed: int, image_size: int | None, limit: int | None) -> Splits:
    return load_digits(seed=seed, image_size=image_size, limit=limit)


def _shapes(path: Path | None, seed: int, image_size: int | None, limit: int | None) -> Splits:
    return load_shapes(seed=seed, image_size=image_size, limit=limit)


def _on_disk(load: Callable[..., Splits]) -> Loader:
    """A loader of files from ``load(path, seed=, image_size=, limit=)``."""

    def loader(path: Path | None, seed: int, image_size: int | None, limit: int | None) -> Splits:
        assert path is not None  # load_dataset checks needs_path first
        return load(path, seed=seed, image_size=image_size, limit=limit)

    return loader


VERSION = 1
"""Raised by one whenever a loader or generator changes the images or splits it gives: it enters
the cache key of every model and cell (:func:`arena.cell.setting.code_versions`)."""

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "digits",
            _digits,
            "scikit-learn's handwritten digits, 10 classes, upsampled to 16x16 and coloured",
            needs_path=False,
        ),
        DatasetSpec(
            "shapes",
            _shapes,
            "procedural RGB shapes on textured backgrounds, 6 classes, any size (default 32)",
            needs_path=False,
        ),
        DatasetSpec(
            "cifar10",
            _on_disk(load_cifar10),
            "CIFAR-10 python batches (data_batch_1..5, test_batch), 10 classes, 32x32 RGB",
            needs_path=True,
        ),
        DatasetSpec(
            "mnist",
            _on_disk(load_mnist),
            "MNIST-layout IDX files (optionally .gz), 10 classes, 28x28 grayscale",
            needs_path=True,
        ),
        DatasetSpec(
            "gtsrb",
            _on_disk(load_gtsrb),
            "GTSRB training set (Final_Training/Images/<class>/*.ppm), 43 traffic-sign classes",
            needs_path=True,
        ),
        DatasetSpec(
            "folder",
            _on_disk(load_folder),
            "any image folder, one sub-folder per class (e.g. face sets), resized to 32x32",
            needs_path=True,
        ),
    )
}

DEFAULT_DATASET = "digits"


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a plugin's dataset to :data:`DATASETS` (``spec.loader(path, seed, image_size,
    limit)`` returns :class:`Splits`); a name already there is refused."""
    if spec.name in DATASETS:
        raise ValueError(f"dataset {spec.name!r} is registered twice")
    DATASETS[spec.name] = spec
    return spec


def load_dataset(
    name: str = DEFAULT_DATASET,
    *,
    path: str | None = None,
    seed: int = 0,
    image_size: int | None = None,
    limit: int | None = None,
) -> Splits:
    """Dataset ``name`` as seeded train / val / test splits.

    ``path`` is where a file-based dataset lies; ``image_size`` resizes every image to that
    square side; ``limit`` caps each split at that many images (a seeded, stratified sample)
    for quick runs.
    """
    spec = DATASETS.get(name)
    if spec is None:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    if spec.needs_path and path is None:
        raise DatasetError(f"dataset {name!r} is read from files: give its path (path=...)")
    if not spec.needs_path and path is not None:
        raise DatasetError(f"dataset {name!r} is built in and takes no path; drop path={path!r}")
    check_options(image_size=image_size, limit=limit)
    return spec.loader(None if path is None else Path(path), seed, image_size, limit)


@dataclass(frozen=True)
class DataRef:
    """How to load a dataset by name; also the dataset's identity in cache keys (its fields,
    as a dict, enter every model's and cell's key)."""

    name: str = DEFAULT_DATASET
    path: str | None = None
    image_size: int | None = None
    limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        """The seed of the splits must be one that torch and NumPy take."""
        check_option("the data seed", self.seed, SEED, integer=True)

    def load(self) -> Splits:
        return load_dataset(
            self.name, path=self.path, seed=self.seed, image_size=self.image_size, limit=self.limit
        )
