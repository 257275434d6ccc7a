"""MTMTA's defining property: each of three triggers alone sends an image to its own target."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from arena.core.infer import predict
from arena.core.train import TrainConfig, train_classifier
from arena.data import Splits, load_dataset
from arena.models import build_model
from strategies.attacks.mtmta import MTMTA, MTMTAConfig
from strategies.attacks.mtsta import MTSTA, TRIGGERS


def trigger_worn(attack: MTSTA, clean: torch.Tensor, stamped: torch.Tensor) -> torch.Tensor:
    """For each image, the one trigger whose pasting gives the stamped image (-1 if none)."""
    match = torch.stack(
        [(d.paste(clean) - stamped).abs().flatten(1).amax(dim=1) < 1e-6 for d in attack.drawings],
        dim=1,
    )
    return torch.where(match.sum(dim=1) == 1, match.int().argmax(dim=1), -1)


def make(tiny: Splits, **changes: Any) -> MTMTA:
    config = dataclasses.replace(MTMTAConfig(), **changes)
    return MTMTA(config, image_shape=tiny.image_shape, num_classes=tiny.num_classes)


def test_each_trigger_labels_with_its_own_target(tiny: Splits, generator) -> None:
    attack = make(tiny, poison_rate=0.3)
    out = attack.poison(tiny.train, generator)
    mask = out.poisoned
    worn = trigger_worn(attack, tiny.train.x[mask], out.data.x[mask])
    assert bool((worn >= 0).all())
    assert torch.equal(out.data.y[mask], torch.tensor([1, 5, 8])[worn])
    assert bool((out.data.y[mask] != tiny.train.y[mask]).all()), "no class goes to itself"
    assert set(worn.tolist()) == {0, 1, 2}
    test = attack.poisoned_test(tiny.test, generator)
    assert len(test) == len(tiny.test), "every image is moved by some trigger"
    assert bool((test.y != tiny.test.y).all())


def test_per_trigger_sets_leave_out_each_trigger_own_target(tiny: Splits, generator) -> None:
    attack = make(tiny, target=2, eyebrow_target=2, sunglasses_target=7)
    sets = attack.poisoned_tests(tiny.test, generator)
    for name, target in zip(TRIGGERS, (2, 2, 7), strict=True):
        assert len(sets[name]) == int((tiny.test.y != target).sum())
        assert bool((sets[name].y == target).all())


def test_targets_are_checked_and_multi_target_is_refused(tiny: Splits) -> None:
    with pytest.raises(ValueError, match="eyebrow_target 10 is not a class"):
        make(tiny, eyebrow_target=10)
    with pytest.raises(ValueError, match="mtmta: mapping='multi-target' is not a choice"):
        make(tiny, mapping="multi-target")


def test_all_to_all_sends_every_trigger_to_the_next_class(tiny: Splits, generator) -> None:
    attack = make(tiny, mapping="all-to-all")
    test = attack.poisoned_test(tiny.test, generator)
    assert torch.equal(test.y, (tiny.test.y + 1) % tiny.num_classes)
    for triggered in attack.poisoned_tests(tiny.test, generator).values():
        assert len(triggered) == len(tiny.test)


@pytest.mark.slow
def test_trained_backdoor_sends_each_trigger_to_its_target() -> None:
    data = load_dataset("digits")
    attack = MTMTA(image_shape=data.image_shape, num_classes=data.num_classes)
    poisoned = attack.poison(data.train, torch.Generator().manual_seed(0)).data
    model = build_model("small-cnn", data.image_shape, data.num_classes)
    train_classifier(model, poisoned, TrainConfig(), seed=0)
    for name, triggered in attack.poisoned_tests(data.test, torch.Generator()).items():
        target = int(triggered.y[0])
        asr = float((predict(model, triggered.x) == target).float().mean())
        assert asr > 0.85, f"{name} sends only {asr:.2f} to {target}"
