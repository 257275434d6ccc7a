"""The generative attacks (iadba, issba): trained once per cache, any image size, never used
before they are trained."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

import arena.core.cache
from arena.core.cache import ArtifactCache
from arena.data import Split, Splits
from strategies import attack_class
from strategies.attacks.generative import TRAIN_SIDE, GenerativeAttack, training_images

NAMES = ("iadba", "issba")


def tiny_attack(
    name: str,
    image_shape: tuple[int, int, int],
    cache: ArtifactCache | None = None,
    **changes: Any,
) -> GenerativeAttack:
    """The attack with a 4-channel network trained for one pass."""
    cls = attack_class(name)
    config = dataclasses.replace(cls.config_cls(), **{"epochs": 1, "width": 4, **changes})
    attack = cls(config, image_shape=image_shape, num_classes=10, cache=cache)
    assert isinstance(attack, GenerativeAttack)
    return attack


def random_split(shape: tuple[int, int, int], n: int = 70, seed: int = 0) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.rand(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 16, 16), (1, 224, 224), (3, 224, 224)])
def test_any_size_and_channels(name: str, shape: tuple[int, int, int]) -> None:
    train = random_split(shape)
    attack = tiny_attack(name, shape)
    attack.prepare(train)
    x = train.x[:3]
    out = attack.stamp(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert bool(((out - x).abs().flatten(1).amax(dim=1) > 0.01).all())


def test_training_images_are_bounded_in_size_and_count() -> None:
    x = torch.rand(5, 3, 100, 40)
    crops = training_images(x, seed=0, view="crop")
    assert crops.shape == (5, 3, TRAIN_SIDE, TRAIN_SIDE)
    # a crop is a piece of one of the images, pixel for pixel
    found = any(
        torch.equal(x[i, :, t : t + TRAIN_SIDE, s : s + TRAIN_SIDE], crops[0])
        for i in range(5)
        for t in range(100 - TRAIN_SIDE + 1)
        for s in range(40 - TRAIN_SIDE + 1)
    )
    assert found
    resized = training_images(x, seed=0, view="resize")
    assert resized.shape == (5, 3, TRAIN_SIDE, TRAIN_SIDE)
    assert torch.equal(training_images(x, seed=0), crops), "the same seed, the same crops"
    small = torch.rand(3, 1, 16, 16)
    assert training_images(small, seed=0).shape == small.shape


@pytest.mark.parametrize("name", NAMES)
def test_unprepared_attack_says_how_to_fix(name: str, tiny: Splits) -> None:
    attack = tiny_attack(name, tiny.image_shape)
    with pytest.raises(RuntimeError, match=r"prepare\(train\)"):
        attack.stamp(tiny.test.x[:2], torch.Generator())


@pytest.mark.parametrize("name", NAMES)
def test_network_is_trained_once_then_read_from_the_cache(
    name: str, tiny: Splits, tmp_path, monkeypatch
) -> None:
    fits: list[str] = []
    cls = attack_class(name)
    assert issubclass(cls, GenerativeAttack)
    original = cls.fit

    def counting_fit(self, network, x):  # type: ignore[no-untyped-def]
        fits.append(self.name)
        return original(self, network, x)

    monkeypatch.setattr(cls, "fit", counting_fit)
    cache = ArtifactCache(str(tmp_path))
    monkeypatch.setattr(arena.core.cache, "_MEMO", type(arena.core.cache._MEMO)())
    first = tiny_attack(name, tiny.image_shape, cache=cache)
    first.prepare(tiny.train)
    assert fits == [name]
    first.prepare(tiny.train)  # the same data: nothing to do
    assert fits == [name]

    # a fresh process
    monkeypatch.setattr(arena.core.cache, "_MEMO", type(arena.core.cache._MEMO)())
    hits = cache.hits
    again = tiny_attack(name, tiny.image_shape, cache=cache, target=5, poison_rate=0.2)
    again.prepare(tiny.train)
    assert fits == [name], "another target or rate reuses the trained network"
    assert cache.hits == hits + 1
    x = tiny.test.x[:8]
    g = torch.Generator()
    assert torch.equal(first.stamp(x, g), again.stamp(x, g))

    other_data = tiny_attack(name, tiny.image_shape, cache=cache)
    other_data.prepare(tiny.val)
    assert fits == [name, name], "other attacker data trains a new network"
