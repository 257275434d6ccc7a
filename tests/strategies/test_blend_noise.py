"""Blended noise's defining property: the output is (1 - alpha) x + alpha k for one fixed
uniform-noise key k."""

from __future__ import annotations

import torch

from arena.data import Splits
from strategies.attacks.blend_noise import BlendNoise, BlendNoiseConfig


def test_output_is_the_blend_formula_with_one_key(tiny: Splits) -> None:
    attack = BlendNoise(BlendNoiseConfig(alpha=0.15), image_shape=tiny.image_shape, num_classes=10)
    x = tiny.test.x[:10]
    out = attack.stamp(x, torch.Generator().manual_seed(5))
    key = (out - 0.85 * x) / 0.15
    assert torch.allclose(key, key[:1].expand_as(key), atol=1e-4), "one key for every image"
    assert torch.allclose(out, 0.85 * x + 0.15 * attack.key, atol=1e-6)


def test_key_is_uniform_noise_fixed_by_its_seed() -> None:
    a = BlendNoise(image_shape=(3, 64, 64), num_classes=10).key
    b = BlendNoise(image_shape=(3, 64, 64), num_classes=10).key
    c = BlendNoise(BlendNoiseConfig(key_seed=1), image_shape=(3, 64, 64), num_classes=10).key
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(float(a.mean()) - 0.5) < 0.02 and abs(float(a.std()) - (1 / 12) ** 0.5) < 0.02
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
