"""The suite every registered attack must pass, on tiny data."""

from __future__ import annotations

import dataclasses
import re

import optuna
import pytest
import torch

from arena.core.config import searchable_fields
from arena.data import Splits
from strategies import ATTACKS, attack_class
from strategies.attacks import Attack
from studies.spaces import config_from_params, config_space

NAMES = sorted(ATTACKS)
CHOICE_FIELDS = [
    (n, f.name)
    for n in NAMES
    for f, rng in searchable_fields(ATTACKS[n].config_cls)
    if rng.choices is not None
]


def make(name: str, data: Splits, **changes: object) -> Attack:
    cls = attack_class(name)
    config = dataclasses.replace(cls.config_cls(), **changes)
    attack = cls(config, image_shape=data.image_shape, num_classes=data.num_classes)
    attack.prepare(data.train)  # an attack's trained parts (a trigger generator)
    return attack


@pytest.mark.parametrize("name", NAMES)
def test_stamp_changes_images_and_keeps_input(name: str, tiny: Splits, generator) -> None:
    attack = make(name, tiny)
    x = tiny.test.x[:20]
    before = x.clone()
    out = attack.stamp(x, generator)
    assert torch.equal(x, before), "stamp must not change its input"
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert (out - x).abs().flatten(1).amax(dim=1).min() > 0.05, "every image must carry a trigger"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("rate", [0.05, 0.2])
def test_poison_rate_honoured_and_labels_mapped(
    name: str, rate: float, tiny: Splits, generator
) -> None:
    attack = make(name, tiny, poison_rate=rate, target=3, mapping="all-to-one")
    poisoned = attack.poison(tiny.train, generator)
    mask = poisoned.poisoned
    count = round(rate * len(tiny.train))
    if attack.clean_label:  # clean-label attacks poison target-class images only
        count = min(count, int((tiny.train.y == 3).sum()))
        assert bool((tiny.train.y[mask] == 3).all()), "clean-label poisons the target class only"
    assert int(mask.sum()) == count
    expected = attack.target_of(tiny.train.y[mask])
    assert torch.equal(poisoned.data.y[mask], expected)
    assert torch.equal(poisoned.data.y[~mask], tiny.train.y[~mask]), "only poisoned labels move"
    if not attack.clean_label:
        # all-to-one never poisons the target class, nor mtmta a class with its trigger's target
        moved = poisoned.data.y[mask] != tiny.train.y[mask]
        assert bool(moved.all()), "a poisoned image's label always moves"
    assert not torch.equal(poisoned.data.x[mask], tiny.train.x[mask])


@pytest.mark.parametrize("name", NAMES)
def test_all_to_all_maps_y_to_y_plus_one(name: str, tiny: Splits, generator) -> None:
    if "all-to-all" not in mapping_choices(name):
        pytest.skip(f"{name} has one target (clean-label) or targets of its own")
    attack = make(name, tiny, mapping="all-to-all")
    test = attack.poisoned_test(tiny.test, generator)
    assert len(test) == len(tiny.test)
    assert torch.equal(test.y, (tiny.test.y + 1) % tiny.num_classes)


def mapping_choices(name: str) -> tuple[str, ...]:
    field = {f.name: f for f in dataclasses.fields(attack_class(name).config_cls)}["mapping"]
    return tuple(field.metadata["range"].choices)


@pytest.mark.parametrize("name", NAMES)
def test_multi_target_shares_classes_among_three_targets(
    name: str, tiny: Splits, generator
) -> None:
    if "multi-target" not in mapping_choices(name):
        pytest.skip(f"{name} has targets of its own")
    attack = make(name, tiny, mapping="multi-target", target=8)
    test = attack.poisoned_test(tiny.test, generator)
    source = tiny.test.y[attack.eligible(tiny.test.y)]
    assert torch.equal(test.y, (8 + source % 3) % tiny.num_classes)
    assert set(test.y.tolist()) == {8, 9, 0}
    assert bool((test.y != source).all()), "no class is sent to itself"


@pytest.mark.parametrize("name", NAMES)
def test_poisoned_test_leaves_out_target_class(name: str, tiny: Splits, generator) -> None:
    if "multi-target" not in mapping_choices(name) and not attack_class(name).clean_label:
        pytest.skip(f"{name} has targets of its own")
    attack = make(name, tiny, target=2, mapping="all-to-one")
    test = attack.poisoned_test(tiny.test, generator)
    assert len(test) == int((tiny.test.y != 2).sum())
    assert bool((test.y == 2).all())


@pytest.mark.parametrize("name", NAMES)
def test_config_round_trips_through_search_space(name: str, tiny: Splits) -> None:
    cls = attack_class(name)
    space = config_space(cls.config_cls, num_classes=tiny.num_classes, prefix="attack.")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(12):
        trial = study.ask(fixed_distributions=space)
        config = config_from_params(cls.config_cls, trial.params, prefix="attack.")
        attack = cls(config, image_shape=tiny.image_shape, num_classes=tiny.num_classes)
        attack.prepare(tiny.train)
        out = attack.stamp(tiny.test.x[:4], torch.Generator().manual_seed(0))
        assert out.shape == (4, *tiny.image_shape)
        seen.add(config)
    assert len(seen) > 1, "sampling must explore the space"


@pytest.mark.parametrize(("name", "field"), CHOICE_FIELDS)
def test_the_base_refuses_a_value_outside_a_fields_choices(
    name: str, field: str, tiny: Splits
) -> None:
    cls = attack_class(name)
    choices = {f.name: rng.choices for f, rng in searchable_fields(cls.config_cls)}[field]
    assert choices is not None
    allowed = ", ".join(repr(c) for c in (*choices, *cls.unsearched_choices.get(field, ())))
    message = f"{name}: {field}='sideways' is not a choice; choose one of {allowed}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        make(name, tiny, **{field: "sideways"})


def test_a_bad_mapping_names_the_attack_the_field_and_the_choices(tiny: Splits) -> None:
    expected = (
        r"^badnets: mapping='sideways' is not a choice; choose one of 'all-to-one', "
        r"'all-to-all', 'multi-target' \(all-to-one: y -> target; "
    )
    with pytest.raises(ValueError, match=expected):
        make("badnets", tiny, mapping="sideways")


def test_numeric_search_ranges_do_not_limit_values(tiny: Splits, generator) -> None:
    attack = make("badnets", tiny, size=0.5, poison_rate=0.5)  # ranges: 0.1-0.35, 0.01-0.3
    assert int(attack.poison(tiny.train, generator).poisoned.sum()) > 0.3 * len(tiny.train)


def test_unknown_target_is_rejected(tiny: Splits) -> None:
    with pytest.raises(ValueError, match="not a class"):
        make("badnets", tiny, target=tiny.num_classes)
