"""SIG's defining property: a sinusoid along the columns (the same on every row and channel),
weak on target-class training images whose labels stay, stronger at test time."""

from __future__ import annotations

import math

import pytest
import torch

from arena.data import Splits
from strategies.attacks.sig import SIG, SIGConfig


@pytest.mark.parametrize(("channels", "width"), [(3, 16), (1, 40)])
def test_trigger_is_a_sinusoid_along_columns(channels: int, width: int) -> None:
    config = SIGConfig(test_amplitude=0.3, frequency=4)
    attack = SIG(config, image_shape=(channels, 12, width), num_classes=10)
    x = torch.full((2, channels, 12, width), 0.5)
    signal = attack.stamp(x, torch.Generator()) - x
    assert torch.allclose(signal, signal[:, :1, :1].expand_as(signal)), "same on rows, channels"
    j = torch.arange(width, dtype=torch.float32)
    expected = 0.3 * torch.sin(2 * math.pi * 4 * j / width)
    assert torch.allclose(signal[0, 0, 0], expected, atol=1e-6)


def test_poison_keeps_labels_and_uses_the_training_amplitude(tiny: Splits, generator) -> None:
    attack = SIG(SIGConfig(amplitude=0.1, target=2), image_shape=tiny.image_shape, num_classes=10)
    out = attack.poison(tiny.train, generator)
    assert torch.equal(out.data.y, tiny.train.y)
    changed = (out.data.x != tiny.train.x).flatten(1).any(dim=1)
    assert torch.equal(changed, out.poisoned) and bool((tiny.train.y[changed] == 2).all())
    grey = torch.full((1, *tiny.image_shape), 0.5)
    trained = attack.poison_images(grey, tiny.train, generator) - grey
    tested = attack.stamp(grey, generator) - grey
    assert float(trained.abs().max()) == pytest.approx(0.1, abs=0.01)
    assert float(tested.abs().max()) == pytest.approx(0.5, abs=0.01), "stronger at test time"


def test_test_set_holds_the_other_classes_at_the_target(tiny: Splits, generator) -> None:
    attack = SIG(SIGConfig(target=7), image_shape=tiny.image_shape, num_classes=10)
    test = attack.poisoned_test(tiny.test, generator)
    assert len(test) == int((tiny.test.y != 7).sum()) and bool((test.y == 7).all())
