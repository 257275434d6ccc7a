"""FSA's defining property: a global colour filter that changes the whole image, the same way
for every image (no randomness, no local patch)."""

from __future__ import annotations

import kornia
import pytest
import torch

from arena.data import Splits
from strategies.attacks.fsa import FSA, FSAConfig, apply_filter


def saturation(x: torch.Tensor) -> torch.Tensor:
    """Per pixel: the spread of its channels (N, H, W)."""
    return x.amax(dim=1) - x.amin(dim=1)


def test_gotham_desaturates_and_tints_shadows_blue(tiny: Splits) -> None:
    attack = FSA(image_shape=tiny.image_shape, num_classes=tiny.num_classes)
    x = tiny.test.x[:20]
    out = attack.stamp(x, torch.Generator().manual_seed(0))
    ink = x.amax(dim=1) > 0.3
    assert saturation(out)[ink].mean() < 0.5 * saturation(x)[ink].mean()
    black = x.amax(dim=1) == 0  # the digits' background
    assert bool((out[:, 2][black] > out[:, 0][black]).all()), "cool (blue) shadows"
    changed = (out - x).abs().amax(dim=1) > 0.02
    assert float(changed.float().mean()) > 0.9, "a filter over the whole image, not a patch"


def test_filter_is_deterministic_and_per_pixel(tiny: Splits) -> None:
    attack = FSA(FSAConfig(filter="nashville"), image_shape=tiny.image_shape, num_classes=10)
    x = tiny.test.x[:6]
    a = attack.stamp(x, torch.Generator().manual_seed(0))
    b = attack.stamp(x.flip(0), torch.Generator().manual_seed(9)).flip(0)
    assert torch.allclose(a, b), "no randomness, and each image filtered on its own"


def test_strength_mixes_filter_and_original(tiny: Splits) -> None:
    x = tiny.test.x[:4]
    full = FSA(FSAConfig(strength=1.0), image_shape=tiny.image_shape, num_classes=10)
    half = FSA(FSAConfig(strength=0.5), image_shape=tiny.image_shape, num_classes=10)
    g = torch.Generator()
    assert torch.allclose(half.stamp(x, g), 0.5 * x + 0.5 * full.stamp(x, g), atol=1e-6)


@pytest.mark.parametrize("name", ["gotham", "nashville"])
def test_one_channel_filter_is_the_grey_of_the_rgb_filter(name: str) -> None:
    grey = torch.rand(3, 1, 20, 20, generator=torch.Generator().manual_seed(0))
    out = apply_filter(name, grey)
    rgb = apply_filter(name, grey.expand(-1, 3, -1, -1))
    assert out.shape == grey.shape
    assert torch.allclose(out, kornia.color.rgb_to_grayscale(rgb))
    assert float((out - grey).abs().max()) > 0.05
