"""Refool's defining property: reflections on target-class training images, labels untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from arena.data import Splits
from strategies.attacks.refool import KINDS, Refool, RefoolConfig, reflection_layer


def test_poison_keeps_labels_and_touches_only_target_images(tiny: Splits, generator) -> None:
    attack = Refool(
        RefoolConfig(target=3, poison_rate=0.05),
        image_shape=tiny.image_shape,
        num_classes=tiny.num_classes,
    )
    out = attack.poison(tiny.train, generator)
    assert torch.equal(out.data.y, tiny.train.y), "no label changes"
    changed = (out.data.x != tiny.train.x).flatten(1).any(dim=1)
    assert torch.equal(changed, out.poisoned)
    assert int(changed.sum()) == round(0.05 * len(tiny.train))
    assert bool((tiny.train.y[changed] == 3).all()), "only target-class images carry reflections"
    capped = Refool(
        RefoolConfig(target=3, poison_rate=0.1),
        image_shape=tiny.image_shape,
        num_classes=tiny.num_classes,
    ).poison(tiny.train, generator)
    assert int(capped.poisoned.sum()) == min(15, int((tiny.train.y == 3).sum()))


def test_stamp_adds_the_reflection_layer_with_its_strength() -> None:
    config = RefoolConfig(strength=0.4, reflections=3)
    attack = Refool(config, image_shape=(3, 24, 24), num_classes=10)
    assert attack.layers.shape == (3, 3, 24, 24)
    out = attack.stamp(torch.zeros(8, 3, 24, 24), torch.Generator().manual_seed(0))
    for image in out:
        gaps = [(image - (0.4 * layer).clamp(0, 1)).abs().max() for layer in attack.layers]
        assert min(gaps) < 1e-6, "each image holds one of the reflections"


def test_the_three_reflection_kinds() -> None:
    images = torch.zeros(1, 1, 20, 20)
    images[0, 0, 10, 10] = 1.0
    blur, ghost, sharp = (reflection_layer(images, k, blur=0.05, ghost_shift=0.1) for k in KINDS)
    assert torch.equal(sharp, images)
    assert 0 < float(blur[0, 0, 10, 10]) < 1 and float(blur[0, 0, 10, 11]) > 0, "out of focus"
    assert abs(float(blur.sum()) - 1.0) < 1e-4, "blurring keeps the light"
    assert float(ghost[0, 0, 10, 10]) == 0.5 and float(ghost[0, 0, 12, 12]) == 0.5, "seen twice"


def test_reflections_from_an_image_folder(tmp_path) -> None:
    for k in range(3):
        pixels = np.full((30, 40, 3), 60 * (k + 1), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"r{k}.png")
    config = RefoolConfig(source=str(tmp_path), reflections=2, kind="sharp")
    attack = Refool(config, image_shape=(1, 16, 16), num_classes=10)
    assert attack.layers.shape == (2, 1, 16, 16)
    levels = sorted(round(float(layer.mean()) * 255) for layer in attack.layers)
    assert len(set(levels)) == 2 and set(levels) <= {60, 120, 180}
    with pytest.raises(ValueError, match="set source=shapes or a folder of images"):
        Refool(
            RefoolConfig(source=str(tmp_path / "missing")), image_shape=(3, 16, 16), num_classes=10
        )
