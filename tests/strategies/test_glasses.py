"""Glasses' defining property: Chen et al.'s blended accessory, ``(1 - a m) x + a m k``."""

from __future__ import annotations

import pytest
import torch

from arena.data import Splits
from strategies.attacks.glasses import Glasses, GlassesConfig
from strategies.attacks.semantic import COLOURS, glasses_masks


@pytest.mark.parametrize("alpha", [0.25, 0.6, 1.0])
def test_stamp_equals_the_blend_formula(alpha: float, tiny: Splits) -> None:
    config = GlassesConfig(alpha=alpha, lens="pink", frame="purple")
    attack = Glasses(config, image_shape=tiny.image_shape, num_classes=tiny.num_classes)
    x = tiny.test.x[:12]
    _, h, w = tiny.image_shape
    lenses, frame = glasses_masks(
        h, w, span=config.span, lens_height=config.lens_height, row=config.row
    )
    pink, purple = (torch.tensor(COLOURS[c]).view(3, 1, 1) for c in ("pink", "purple"))
    m = lenses + frame  # lenses and rims never share a sample
    expected = (1 - alpha * m) * x + alpha * (lenses * pink + frame * purple)
    assert torch.allclose(attack.stamp(x, torch.Generator()), expected, atol=1e-6)
    outside = m[0] == 0
    assert torch.equal(attack.stamp(x, torch.Generator())[:, :, outside], x[:, :, outside])


def test_glasses_reuse_the_sunglasses_geometry() -> None:
    shape = (1, 48, 48)
    sg_like = Glasses(GlassesConfig(alpha=1.0, row=0.3), image_shape=shape, num_classes=10)
    lenses, frame = glasses_masks(48, 48, span=0.8, lens_height=0.25, row=0.3)
    assert torch.allclose(sg_like.drawing.mask, lenses + frame)
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(sg_like.stamp(x, torch.Generator()), sg_like.drawing.paste(x))
