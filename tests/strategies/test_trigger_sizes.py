"""Triggers of the patch, blend, filter and clean-label attacks at any image size from 16 to
224 pixels (square or not) and with one or three channels."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from arena.data import Split
from strategies import attack_class

NAMES = ["aaa", "badnets-dynamic", "blend-cartoon", "blend-noise", "cla", "fsa", "pn", "sig"]
SHAPES = [(1, 16, 16), (3, 16, 16), (3, 24, 40), (1, 64, 64), (3, 224, 224)]


def random_split(shape: tuple[int, int, int], n: int = 20) -> Split:
    g = torch.Generator().manual_seed(12345)  # not the seed of any key image
    x = 0.8 * torch.rand(n, *shape, generator=g) + 0.1
    return Split(x, torch.arange(n) % 10)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", NAMES)
def test_stamp_and_poison_at_any_size(name: str, shape: tuple[int, int, int]) -> None:
    cls = attack_class(name)
    config = cls.config_cls()
    if name == "cla" and shape[-1] > 64:  # the surrogate at 224 pixels takes half a minute
        config = dataclasses.replace(config, epsilon=0.0)  # type: ignore[call-arg]
    attack = cls(config, image_shape=shape, num_classes=10)
    data = random_split(shape)
    before = data.x.clone()
    out = attack.stamp(data.x, torch.Generator().manual_seed(0))
    assert torch.equal(data.x, before)
    assert out.shape == data.x.shape and out.dtype == data.x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert (out - data.x).abs().flatten(1).amax(dim=1).min() > 0.05
    poisoned = attack.poison(data, torch.Generator().manual_seed(0))
    assert poisoned.data.x.shape == data.x.shape and bool(poisoned.poisoned.any())
    changed = (poisoned.data.x != data.x).flatten(1).any(dim=1)
    assert torch.equal(changed, poisoned.poisoned)
