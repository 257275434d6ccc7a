"""What every loader shares: the error type, seeded stratified splits, subsampling, resizing.

Splits are stratified by systematic sampling with a random start (Cochran, "Sampling
Techniques", 3rd ed., ch. 8): within each class, taken in a seeded random order, the element of
rank ``r`` among ``n_c`` sits at position ``(r + u_c) / n_c`` in ``[0, 1)``, with ``u_c`` a
seeded uniform offset, and the split whose cumulative share covers that position takes it.
Every split so gets ``floor`` or ``ceil`` of its share of every class, exactly its share in
expectation, with no per-class Python loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from itertools import accumulate

import torch

from arena.data.splits import Split, Splits

logger = logging.getLogger(__name__)

TRAIN_VAL_TEST = (0.6, 0.2, 0.2)
"""Shares of train / defender's clean validation / test when a dataset has no test split."""

VAL_FRACTION = 0.1
"""Share of a dataset's own training split held out as the defender's clean validation."""

_RESIZE_CHUNK = 2048
"""Images resized per call, bounding the peak memory of upsampling large datasets."""

MIN_IMAGE_SIZE = 4
MAX_IMAGE_SIZE = 1024
"""Largest side ``image_size`` may ask for: a 1024x1024 RGB image is 12 MiB as floats, and
model files refuse larger image shapes too (``arena.core.model_files``)."""


class DatasetError(ValueError):
    """A dataset cannot be loaded as asked; the one-line message names the problem and the fix."""


def seeded_generator(seed: int, salt: int) -> torch.Generator:
    """A CPU generator for one purpose (``salt``) of one seed, independent of the others."""
    return torch.Generator().manual_seed(seed * 1_000_003 + salt)


def _class_positions(y: torch.Tensor, seed: int, salt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of ``y`` grouped by class in seeded random order, and each one's position.

    Returns ``(index, position)``: ``position[k] = (r + u_c) / n_c`` for ``index[k]``, the
    element of rank ``r`` among the ``n_c`` of its class ``c``, ``u_c`` uniform in [0, 1).
    """
    n = int(y.shape[0])
    generator = seeded_generator(seed, salt)
    perm = torch.randperm(n, generator=generator)
    sorted_y, order = torch.sort(y[perm], stable=True)
    counts = torch.bincount(sorted_y)
    offset = torch.rand(counts.shape[0], generator=generator, dtype=torch.double)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[sorted_y]
    position = (rank.double() + offset[sorted_y]) / counts[sorted_y].double()
    return perm[order], position


def stratified_partition(
    y: torch.Tensor, fractions: Sequence[float], *, seed: int
) -> list[torch.Tensor]:
    """Split the indices of labels ``y`` into disjoint parts, each class in ``fractions``.

    The parts are sorted index tensors covering ``range(len(y))`` exactly once.
    """
    if y.numel() and int(y.min()) < 0:
        raise DatasetError(f"labels must be non-negative class indices, got {int(y.min())}")
    index, position = _class_positions(y, seed, salt=1)
    total = float(sum(fractions))
    bounds = torch.tensor(list(accumulate(f / total for f in fractions))[:-1], dtype=torch.double)
    part = torch.bucketize(position, bounds, right=True)
    return [index[part == k].sort().values for k in range(len(fractions))]


def stratified_subsample(y: torch.Tensor, limit: int, *, seed: int) -> torch.Tensor:
    """Sorted indices of at most ``limit`` elements of ``y``, classes kept in proportion."""
    if y.shape[0] <= limit:
        return torch.arange(int(y.shape[0]))
    index, position = _class_positions(y, seed, salt=2)
    keep = torch.argsort(position, stable=True)[:limit]
    return index[keep].sort().values


def capped(labels: torch.Tensor, limit: int | None, *, seed: int, split: int) -> torch.Tensor:
    """Sorted indices of the images of split number ``split`` (0 train, 1 val, 2 test) that
    ``limit`` keeps: all of them without a limit, else a seeded, stratified sample.

    This is the one rule every loader applies, from the labels alone, before it decodes or
    resizes an image: the images kept never depend on ``image_size``.
    """
    if limit is None:
        return torch.arange(int(labels.shape[0]))
    return stratified_subsample(labels, limit, seed=seed + split)


def three_way_choice(y: torch.Tensor, *, seed: int, limit: int | None) -> list[torch.Tensor]:
    """Indices into the pool labelled ``y`` of train / val / test: the seeded, stratified
    60/20/20 split of :func:`split_three_ways`, each part then capped at ``limit`` as
    :func:`finish` caps it. A loader that makes or resizes images builds only these."""
    parts = stratified_partition(y, TRAIN_VAL_TEST, seed=seed)
    return [part[capped(y[part], limit, seed=seed, split=k)] for k, part in enumerate(parts)]


def splits_from_choice(
    name: str, x: torch.Tensor, y: torch.Tensor, parts: list[torch.Tensor], *, num_classes: int
) -> Splits:
    """Splits from images ``x`` of ``torch.cat(parts)``, in that order, and the pool's labels."""
    sizes = [int(part.shape[0]) for part in parts]
    train, val, test = (Split(xs, y[part]) for xs, part in zip(x.split(sizes), parts, strict=True))
    return Splits(name, train, val, test, num_classes)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux's ``MemAvailable``), or ``None``
    where the system does not say."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(count: int, channels: int, size: int) -> None:
    """Refuse, in one line, images whose float32 tensor would take more than half of the
    memory available now (a duel holds several copies of its data)."""
    need = count * channels * size * size * 4
    free = available_memory()
    if free is not None and need > free // 2:
        raise DatasetError(
            f"{count} images of {channels}x{size}x{size} take {need / 2**30:.1f} GiB, more than "
            f"half of the {free / 2**30:.1f} GiB of memory available; lower --image-size or "
            "--limit"
        )


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """``x`` (N, C, H, W) resized to ``size`` x ``size`` (kornia, bilinear, antialiased),
    refused first if the result would not fit in memory (:func:`check_memory`)."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    check_memory(len(x), int(x.shape[1]), size)
    from kornia.geometry.transform import resize

    chunks = [
        resize(chunk, (size, size), interpolation="bilinear", antialias=True).clamp_(0.0, 1.0)
        for chunk in x.split(_RESIZE_CHUNK)
    ]
    return torch.cat(chunks) if chunks else x.new_zeros((0, x.shape[1], size, size))


def check_options(*, image_size: int | None, limit: int | None) -> None:
    """Refuse an ``image_size`` outside 4..:data:`MAX_IMAGE_SIZE` or a non-positive ``limit``
    with a one-line :class:`DatasetError`."""
    if image_size is not None and not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise DatasetError(
            f"image_size must be {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels, got {image_size}"
        )
    if limit is not None and limit < 1:
        raise DatasetError(f"limit must be a positive number of images per split, got {limit}")


def finish(splits: Splits, *, seed: int, image_size: int | None, limit: int | None) -> Splits:
    """Cap each split at ``limit`` images (seeded, stratified), then resize to ``image_size``.

    Subsampling comes first so that a quick run never resizes images it then drops.
    """
    check_options(image_size=image_size, limit=limit)
    parts = [splits.train, splits.val, splits.test]
    if limit is not None:
        parts = [
            part.subset(capped(part.y, limit, seed=seed, split=k)) for k, part in enumerate(parts)
        ]
    if image_size is not None:
        parts = [Split(resize_images(part.x, image_size), part.y) for part in parts]
    train, val, test = parts
    result = Splits(splits.name, train, val, test, splits.num_classes)
    logger.info(
        "dataset %s: train %d, val %d, test %d images of shape %s, %d classes",
        result.name,
        len(result.train),
        len(result.val),
        len(result.test),
        result.image_shape,
        result.num_classes,
    )
    return result


def split_three_ways(
    name: str, x: torch.Tensor, y: torch.Tensor, *, num_classes: int, seed: int
) -> Splits:
    """One labelled pool split 60/20/20 into train / val / test, stratified and seeded."""
    train, val, test = stratified_partition(y, TRAIN_VAL_TEST, seed=seed)
    pool = Split(x, y)
    return Splits(name, pool.subset(train), pool.subset(val), pool.subset(test), num_classes)


def split_train_val(name: str, train: Split, test: Split, *, num_classes: int, seed: int) -> Splits:
    """A dataset with its own test split: a seeded, stratified 10% of train becomes val."""
    keep, val = stratified_partition(train.y, (1.0 - VAL_FRACTION, VAL_FRACTION), seed=seed)
    return Splits(name, train.subset(keep), train.subset(val), test, num_classes)
