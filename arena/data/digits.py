"""The default dataset: scikit-learn's handwritten digits, upsampled and coloured.

The source is the UCI "Optical Recognition of Handwritten Digits" test set as shipped with
scikit-learn (``sklearn.datasets.load_digits``): 1797 images of 8x8 pixels with values 0..16,
10 classes. It is on disk with scikit-learn, so the game runs offline.

Why 16x16 (the default; ``image_size`` overrides): a 3x3 patch trigger then covers 9/256, about
3.5% of the image, as a small patch does on CIFAR-sized images (6x6 of 32x32), and a small CNN
still trains in a few seconds on two CPU cores. At the native 8x8 a patch trigger would cover
a seventh of the image and leave reverse-engineering defenses (Neural Cleanse, ABS) no room to
tell a trigger from a digit stroke. Upsampling is kornia's bilinear resize with antialiasing.

Why colour: each image's ink gets a seeded random colour (random hue, moderate saturation, high
value; a fifth of the images near-grey) on a black background, so that coloured triggers (a
yellow triangle, a red square) are plausible inputs rather than the only colour in the data.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
from pathlib import Path

import numpy as np
import torch

from arena.data.common import (
    check_memory,
    check_options,
    finish,
    resize_images,
    seeded_generator,
    splits_from_choice,
    three_way_choice,
)
from arena.data.splits import Splits

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_SIZE = 16
"""Side of the upsampled images; see the module docstring."""

NUM_CLASSES = 10
GREY_FRACTION = 0.2
"""Share of images whose ink is near-grey (saturation below 0.1)."""


def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as (N, 8, 8) float64 in 0..16 and (N,) int64 labels.

    Reads scikit-learn's ``datasets/data/digits.csv.gz`` directly (64 pixels then the label per
    row, as ``load_digits`` does), which spares the second of importing ``sklearn.datasets``;
    falls back to ``load_digits`` if the file has moved.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            with gzip.open(csv, "rt") as handle:
                table = np.loadtxt(handle, delimiter=",")
            return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.asarray(bunch.images), np.asarray(bunch.target, dtype=np.int64)


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """RGB (N, 3) from hue, saturation and value (N,) in [0, 1].

    The closed form ``f(n) = v - v s max(0, min(k, 4 - k, 1))`` with ``k = (n + 6h) mod 6`` for
    ``n = 5, 3, 1`` (R, G, B), as on Wikipedia's "HSL and HSV" page.
    """
    n = torch.tensor([5.0, 3.0, 1.0])
    k = (n + 6.0 * h[:, None]) % 6.0
    ramp = torch.minimum(torch.minimum(k, 4.0 - k), torch.ones_like(k)).clamp(min=0.0)
    return v[:, None] - v[:, None] * s[:, None] * ramp


def ink_colours(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` RGB ink colours (N, 3): random hue, saturation 0.35..0.75, value 0.75..1, some grey."""
    hue = torch.rand(n, generator=generator)
    saturation = 0.35 + 0.4 * torch.rand(n, generator=generator)
    grey = torch.rand(n, generator=generator) < GREY_FRACTION
    saturation = torch.where(grey, 0.1 * torch.rand(n, generator=generator), saturation)
    value = 0.75 + 0.25 * torch.rand(n, generator=generator)
    return hsv_to_rgb(hue, saturation, value)


def load_digits(
    *, seed: int = 0, image_size: int | None = None, limit: int | None = None
) -> Splits:
    """The coloured digits at ``image_size`` (default 16), split 60/20/20 stratified by ``seed``.

    The split and ``limit`` are chosen from the labels first, so only the images kept are
    upsampled and coloured (each image's colour is drawn for the whole pool all the same).
    """
    check_options(image_size=image_size, limit=limit)
    images, labels = _raw_digits()
    y = torch.from_numpy(labels)
    parts = three_way_choice(y, seed=seed, limit=limit)
    chosen = torch.cat(parts)
    colours = ink_colours(int(y.shape[0]), seeded_generator(seed, salt=3))[chosen]
    check_memory(len(chosen), 3, image_size or DEFAULT_IMAGE_SIZE)  # the coloured images
    ink = torch.from_numpy(images[chosen.numpy()]).float().div_(16.0).unsqueeze(1)
    ink = resize_images(ink, image_size or DEFAULT_IMAGE_SIZE)
    x = (ink * colours[:, :, None, None]).clamp_(0.0, 1.0)
    pool = splits_from_choice("digits", x, y, parts, num_classes=NUM_CLASSES)
    return finish(pool, seed=seed, image_size=image_size, limit=None)
