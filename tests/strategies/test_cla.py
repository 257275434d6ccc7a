"""CLA's defining property: labels never change, only target-class training images are
touched, and the poison is a PGD-hardened image plus the fixed noise trigger."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from arena.core.cache import ArtifactCache
from arena.core.infer import predict
from arena.data import Splits
from strategies.attacks.cla import CLA, CLAConfig, pgd_away


def make(tiny: Splits, **changes: Any) -> CLA:
    config = dataclasses.replace(CLAConfig(), **changes)
    return CLA(config, image_shape=tiny.image_shape, num_classes=tiny.num_classes)


def test_labels_stay_and_only_target_images_change(tiny: Splits, generator) -> None:
    attack = make(tiny, target=4, poison_rate=0.1)
    out = attack.poison(tiny.train, generator)
    assert torch.equal(out.data.y, tiny.train.y), "a clean-label attack never moves a label"
    changed = (out.data.x != tiny.train.x).flatten(1).any(dim=1)
    assert torch.equal(changed, out.poisoned)
    assert bool((tiny.train.y[changed] == 4).all())
    assert int(changed.sum()) == int((tiny.train.y == 4).sum()), "0.1 of the set: the class"


def test_poison_is_bounded_by_epsilon_plus_amplitude(tiny: Splits, generator) -> None:
    attack = make(tiny, epsilon=0.1, amplitude=0.05)
    out = attack.poison(tiny.train, generator)
    delta = (out.data.x - tiny.train.x)[out.poisoned]
    assert float(delta.abs().max()) <= 0.15 + 1e-5
    plain = make(tiny, epsilon=0.0, amplitude=0.05).poison(tiny.train, generator)
    assert not torch.equal(out.data.x, plain.data.x), "the hardening perturbs the images"


def test_test_trigger_is_the_fixed_noise_at_test_amplitude(tiny: Splits) -> None:
    attack = make(tiny, test_amplitude=0.3)
    x = torch.full((3, *tiny.image_shape), 0.5)
    out = attack.stamp(x, torch.Generator().manual_seed(1))
    assert torch.allclose(out - x, 0.3 * attack.pattern.expand_as(x), atol=1e-6)
    assert float(attack.pattern.abs().max()) <= 1.0 and float(attack.pattern.std()) > 0.4


def test_pgd_moves_images_away_from_their_class(tiny: Splits, tiny_model) -> None:
    x, y = tiny.test.x[:40], tiny.test.y[:40]
    right = predict(tiny_model, x) == y
    adv = pgd_away(tiny_model, x, y, 0.2, 10)
    assert float((adv - x).abs().max()) <= 0.2 + 1e-6
    assert float((predict(tiny_model, adv) == y)[right].float().mean()) < 0.5


def test_surrogate_is_cached_by_the_training_set(tiny: Splits, tmp_path) -> None:
    cache = ArtifactCache(str(tmp_path))
    attack = CLA(image_shape=tiny.image_shape, num_classes=10, cache=cache)
    first = attack.surrogate(tiny.train.subset(torch.arange(120)))
    assert len(list((tmp_path / "cla-surrogate").rglob("*.safetensors"))) == 1
    attack.surrogate(tiny.train.subset(torch.arange(100)))
    assert len(list((tmp_path / "cla-surrogate").rglob("*.safetensors"))) == 2
    again = CLA(image_shape=tiny.image_shape, num_classes=10, cache=cache).surrogate(
        tiny.train.subset(torch.arange(120))
    )
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_other_mappings_are_refused(tiny: Splits) -> None:
    with pytest.raises(ValueError, match="clean-label"):
        make(tiny, mapping="all-to-all")
