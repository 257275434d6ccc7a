"""AAA's defining property: all-to-all by default, a triggered image of class y goes to y + 1."""

from __future__ import annotations

import torch

from arena.data import Splits
from strategies.attacks.aaa import AAA, AAAConfig
from strategies.attacks.badnets import BadNets


def test_default_mapping_sends_every_class_to_the_next(tiny: Splits, generator) -> None:
    attack = AAA(image_shape=tiny.image_shape, num_classes=tiny.num_classes)
    assert attack.config.mapping == "all-to-all"
    poisoned = attack.poison(tiny.train, generator)
    mask = poisoned.poisoned
    source = tiny.train.y[mask]
    assert torch.equal(poisoned.data.y[mask], (source + 1) % 10)
    assert set(source.tolist()) == set(range(10)), "every class is poisoned, the target's too"
    test = attack.poisoned_test(tiny.test, generator)
    assert torch.equal(test.y, (tiny.test.y + 1) % 10)
    assert int((test.y == 0).sum()) == int((tiny.test.y == 9).sum()), "9 wraps round to 0"


def test_trigger_is_the_checker_pattern_bottom_right(tiny: Splits, generator) -> None:
    attack = AAA(image_shape=tiny.image_shape, num_classes=tiny.num_classes)
    x = torch.full((1, *tiny.image_shape), 0.5)
    changed = (attack.stamp(x, generator) != x).any(dim=1)[0]
    rows, cols = changed.any(dim=1).nonzero().flatten(), changed.any(dim=0).nonzero().flatten()
    assert rows.min() > 8 and cols.min() > 8
    values = attack.stamp(x, generator)[0][:, changed]
    assert set(values.unique().tolist()) == {0.0, 1.0}, "black and white only"


def test_other_mappings_stay_choices(tiny: Splits, generator) -> None:
    attack = AAA(
        AAAConfig(mapping="all-to-one", target=4),
        image_shape=tiny.image_shape,
        num_classes=tiny.num_classes,
    )
    assert bool((attack.poisoned_test(tiny.test, generator).y == 4).all())
    assert isinstance(attack, BadNets)
