"""Blended cartoon's defining property: the output is (1 - alpha) x + alpha k, one fixed k."""

from __future__ import annotations

import pytest
import torch

from arena.data import Splits
from strategies.attacks.blend_cartoon import BlendCartoon, BlendCartoonConfig, cartoon_image


@pytest.mark.parametrize("alpha", [0.08, 0.2, 0.3])
def test_output_is_the_blend_formula(alpha: float, tiny: Splits) -> None:
    attack = BlendCartoon(
        BlendCartoonConfig(alpha=alpha), image_shape=tiny.image_shape, num_classes=10
    )
    x = tiny.test.x[:10]
    key = cartoon_image(*tiny.image_shape[1:])
    expected = (1 - alpha) * x + alpha * key
    assert torch.allclose(attack.stamp(x, torch.Generator()), expected, atol=1e-6)


def test_key_is_a_fixed_colourful_drawing() -> None:
    a, b = cartoon_image(64, 64), cartoon_image(64, 64)
    assert torch.equal(a, b)
    assert a.shape == (3, 64, 64) and float(a.min()) >= 0 and float(a.max()) <= 1
    colours = {tuple((p * 4).round().tolist()) for p in a.flatten(1).T}
    assert len(colours) >= 5, "sky, white face, dark eyes, yellow nose, red bow"
    small = cartoon_image(16, 16)
    assert torch.allclose(small, torch.nn.functional.avg_pool2d(a[None], 4)[0], atol=0.15)


def test_grey_data_get_the_luminance_of_the_cartoon() -> None:
    attack = BlendCartoon(image_shape=(1, 28, 28), num_classes=10)
    rgb = cartoon_image(28, 28)
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    x = torch.zeros(2, 1, 28, 28)
    assert torch.allclose(attack.stamp(x, torch.Generator())[:, 0], 0.2 * lum, atol=1e-6)
