"""Image folders, one sub-folder per class: GTSRB's training set, face sets, anything alike.

Layout: ``root/<class_name>/*.png|jpg|jpeg|ppm|bmp``, classes numbered in sorted name order.
Either ``root`` holds the class folders and is split 60/20/20 (seeded, stratified), or it holds
``train/`` and ``test/`` (and optionally ``val/``), each with the class folders; without
``val/`` a seeded 10% of ``train/`` is the defender's validation set.

Images become RGB, or stay one channel when every image is grayscale, and are resized to
``image_size`` (default 32) with kornia. Splitting and ``limit`` act on the file list, so a
quick run decodes only the images it keeps.

GTSRB (Stallkamp et al., 2012) training set: ``GTSRB/Final_Training/Images/00000/*.ppm`` and
so on, 43 classes; :func:`load_gtsrb` accepts that folder or any parent of it down to
``Images``, and also the ``Train/<class>/*.png`` layout of later re-packagings.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from arena.data.common import (
    TRAIN_VAL_TEST,
    VAL_FRACTION,
    DatasetError,
    capped,
    check_memory,
    check_options,
    finish,
    resize_images,
    stratified_partition,
)
from arena.data.splits import Split, Splits

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")
DEFAULT_IMAGE_SIZE = 32
GRAYSCALE_MODES = ("L", "1")
MAX_SOURCE_PIXELS = 1 << 25
"""Most pixels an image file may hold (about 33 megapixels, 8192x4096): more than any photo in
a face or traffic-sign set, and a bound on what one decoded image costs (100 MiB as RGB bytes).
Checked from the file's header, before decoding."""
_DECODE_CHUNK = 256
EXPECTED = (
    "expected root/<class_name>/*.png|jpg|jpeg|ppm|bmp, "
    "or root/train/ and root/test/ each laid out so"
)


def _folders(root: Path) -> list[Path]:
    """The visible sub-folders of ``root``, sorted by name."""
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan(root: Path, classes: list[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    """Image files under ``root/<class>/``, their class indices, and the class names.

    With ``classes`` given (a test folder), labels follow that list and unknown classes fail.
    """
    folders = _folders(root)
    if not folders:
        raise DatasetError(f"{root} holds no class folders; {EXPECTED}")
    names = [f.name for f in folders] if classes is None else classes
    if len(names) < 2:
        raise DatasetError(f"{root} holds {len(folders)} class folder, need at least 2; {EXPECTED}")
    files: list[Path] = []
    labels: list[int] = []
    for folder in folders:
        if folder.name not in names:
            raise DatasetError(
                f"class folder {folder} has no counterpart in the training classes; "
                f"test classes must be a subset of train classes"
            )
        found = sorted(
            p
            for p in folder.iterdir()
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        )
        if not found:
            raise DatasetError(f"class folder {folder} holds no images; {EXPECTED}")
        files.extend(found)
        labels.extend([names.index(folder.name)] * len(found))
    return files, labels, names


def _open(path: Path) -> Image.Image:
    """``path`` opened lazily (its header read, no pixels decoded), its size checked.

    An unreadable file, or one whose header claims more than :data:`MAX_SOURCE_PIXELS` (a
    decompression bomb among them), is a one-line :class:`DatasetError` naming the file.
    """
    try:
        with warnings.catch_warnings():  # PIL warns of large images; the check below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as error:
        raise DatasetError(
            f"image {path} is too large to read ({error}); Arena reads images of at most "
            f"{MAX_SOURCE_PIXELS} pixels"
        ) from None
    except (UnidentifiedImageError, OSError) as error:
        raise DatasetError(f"cannot read image {path} ({error}); {EXPECTED}") from error
    width, height = image.size
    if width * height > MAX_SOURCE_PIXELS:
        image.close()
        raise DatasetError(
            f"image {path} claims {width}x{height} pixels, more than the {MAX_SOURCE_PIXELS} "
            "Arena reads (a decompression bomb?); shrink or remove it"
        )
    return image


def _is_grayscale(files: list[Path]) -> bool:
    """Whether every image is grayscale, from the headers alone (PIL opens lazily)."""
    for path in files:
        with _open(path) as image:
            if image.mode not in GRAYSCALE_MODES:
                return False
    return True


def _decode(files: list[Path], *, grayscale: bool, image_size: int) -> torch.Tensor:
    """The images as (N, C, S, S) in [0, 1]: decoded, converted, resized a chunk at a time."""
    channels = 1 if grayscale else 3
    check_memory(len(files), channels, image_size)
    out = torch.empty((len(files), channels, image_size, image_size))
    for start in range(0, len(files), _DECODE_CHUNK):
        by_shape: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
        for k, path in enumerate(files[start : start + _DECODE_CHUNK], start):
            try:
                with _open(path) as image:
                    array = np.asarray(image.convert("L" if grayscale else "RGB"))
            except (UnidentifiedImageError, OSError) as error:  # a truncated file, say
                raise DatasetError(f"cannot read image {path} ({error}); {EXPECTED}") from error
            by_shape.setdefault(array.shape, []).append((k, array))
        for group in by_shape.values():
            index = torch.tensor([k for k, _ in group])
            stacked = torch.from_numpy(np.stack([a for _, a in group]))
            x = stacked.reshape(len(group), *stacked.shape[1:3], channels).permute(0, 3, 1, 2)
            out[index] = resize_images(x.float().div_(255.0), image_size)
    return out


def _load_parts(
    parts: list[tuple[list[Path], torch.Tensor]], *, seed: int, image_size: int, limit: int | None
) -> list[Split]:
    """Decode each (files, labels) part, after capping it at ``limit`` as ``finish`` would."""
    all_files = [path for files, _ in parts for path in files]
    grayscale = _is_grayscale(all_files)
    splits = []
    for k, (files, labels) in enumerate(parts):
        keep = capped(labels, limit, seed=seed, split=k)
        chosen = [files[i] for i in keep.tolist()]
        x = _decode(chosen, grayscale=grayscale, image_size=image_size)
        splits.append(Split(x, labels[keep]))
    return splits


def load_folder(
    path: str | Path,
    *,
    seed: int = 0,
    image_size: int | None = None,
    limit: int | None = None,
    name: str = "folder",
) -> Splits:
    """An image folder as train / val / test at ``image_size`` (default 32); see the module."""
    check_options(image_size=image_size, limit=limit)
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist or is not a folder; {EXPECTED}")
    size = image_size or DEFAULT_IMAGE_SIZE
    if (root / "train").is_dir() and (root / "test").is_dir():
        files, labels, classes = _scan(root / "train")
        y = torch.tensor(labels, dtype=torch.int64)
        if (root / "val").is_dir():
            val_files, val_labels, _ = _scan(root / "val", classes)
            parts = [(files, y), (val_files, torch.tensor(val_labels, dtype=torch.int64))]
        else:
            held = stratified_partition(y, (1.0 - VAL_FRACTION, VAL_FRACTION), seed=seed)
            parts = [([files[i] for i in ix.tolist()], y[ix]) for ix in held]
        test_files, test_labels, _ = _scan(root / "test", classes)
        parts.append((test_files, torch.tensor(test_labels, dtype=torch.int64)))
    else:
        files, labels, classes = _scan(root)
        y = torch.tensor(labels, dtype=torch.int64)
        parts = [
            ([files[i] for i in ix.tolist()], y[ix])
            for ix in stratified_partition(y, TRAIN_VAL_TEST, seed=seed)
        ]
    train, val, test = _load_parts(parts, seed=seed, image_size=size, limit=limit)
    logger.info("image folder %s: %d classes (%s, ...)", root, len(classes), classes[0])
    splits = Splits(name, train, val, test, num_classes=len(classes))
    return finish(splits, seed=seed, image_size=image_size, limit=limit)


def find_gtsrb_images(path: str | Path) -> Path:
    """The folder of GTSRB's class folders at or below ``path``."""
    root = Path(path)
    for candidate in (
        root / "GTSRB" / "Final_Training" / "Images",
        root / "Final_Training" / "Images",
        root / "Images",
        root / "Train",
    ):
        if candidate.is_dir():
            return candidate
    return root


def load_gtsrb(
    path: str | Path, *, seed: int = 0, image_size: int | None = None, limit: int | None = None
) -> Splits:
    """GTSRB's training set (.ppm class folders), split 60/20/20 like any image folder."""
    return load_folder(
        find_gtsrb_images(path), seed=seed, image_size=image_size, limit=limit, name="gtsrb"
    )
