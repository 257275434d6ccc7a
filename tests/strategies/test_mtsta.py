"""MTSTA's defining property: each of three triggers alone sends an image to the one target."""

from __future__ import annotations

import pytest
import torch

from arena.core.infer import predict
from arena.core.train import TrainConfig, train_classifier
from arena.data import Splits, load_dataset
from arena.models import build_model
from strategies.attacks.mtsta import MTSTA, TRIGGERS, MTSTAConfig


def trigger_worn(attack: MTSTA, clean: torch.Tensor, stamped: torch.Tensor) -> torch.Tensor:
    """For each image, the one trigger whose pasting gives the stamped image (-1 if none)."""
    match = torch.stack(
        [(d.paste(clean) - stamped).abs().flatten(1).amax(dim=1) < 1e-6 for d in attack.drawings],
        dim=1,
    )
    return torch.where(match.sum(dim=1) == 1, match.int().argmax(dim=1), -1)


def test_poisoned_images_wear_one_trigger_each_in_turn(tiny: Splits, generator) -> None:
    attack = MTSTA(
        MTSTAConfig(poison_rate=0.2, target=4),
        image_shape=tiny.image_shape,
        num_classes=tiny.num_classes,
    )
    out = attack.poison(tiny.train, generator)
    mask = out.poisoned
    worn = trigger_worn(attack, tiny.train.x[mask], out.data.x[mask])
    assert bool((worn >= 0).all()), "each poisoned image carries exactly one trigger"
    assert torch.equal(worn, torch.arange(int(mask.sum())) % 3), "the triggers take turns"
    assert bool((out.data.y[mask] == 4).all())


def test_per_trigger_test_sets_hold_one_trigger_and_the_target(tiny: Splits, generator) -> None:
    attack = MTSTA(image_shape=tiny.image_shape, num_classes=tiny.num_classes)
    sets = attack.poisoned_tests(tiny.test, generator)
    assert tuple(sets) == TRIGGERS
    keep = tiny.test.y != 4
    for k, name in enumerate(TRIGGERS):
        assert len(sets[name]) == int(keep.sum()) and bool((sets[name].y == 4).all())
        worn = trigger_worn(attack, tiny.test.x[keep], sets[name].x)
        assert bool((worn == k).all()), f"{name}'s set carries only the {name}"
    mixed = attack.poisoned_test(tiny.test, generator)
    assert torch.equal(
        trigger_worn(attack, tiny.test.x[keep], mixed.x), torch.arange(int(keep.sum())) % 3
    )


@pytest.mark.slow
def test_trained_backdoor_fires_for_each_trigger_alone() -> None:
    data = load_dataset("digits")
    attack = MTSTA(image_shape=data.image_shape, num_classes=data.num_classes)
    poisoned = attack.poison(data.train, torch.Generator().manual_seed(0)).data
    model = build_model("small-cnn", data.image_shape, data.num_classes)
    train_classifier(model, poisoned, TrainConfig(), seed=0)
    for name, triggered in attack.poisoned_tests(data.test, torch.Generator()).items():
        asr = float((predict(model, triggered.x) == triggered.y).float().mean())
        assert asr > 0.85, f"{name} alone reaches only {asr:.2f}"
    assert float((predict(model, data.test.x) == data.test.y).float().mean()) > 0.95
