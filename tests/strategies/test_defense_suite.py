"""The suite every registered defense must pass, on tiny data and a small trained model."""

from __future__ import annotations

import dataclasses
import math
import re

import optuna
import pytest
import torch
from torch import nn

from arena.core.config import searchable_fields
from arena.data import Splits
from arena.models import ArenaNet
from strategies import DEFENSES, defense_class
from strategies.defenses import Defense
from studies.spaces import config_from_params, config_space

NAMES = sorted(DEFENSES)
WHITE_BOX = [n for n in NAMES if DEFENSES[n].access == "white-box"]
CHOICE_FIELDS = [
    (n, f.name)
    for n in NAMES
    for f, rng in searchable_fields(DEFENSES[n].config_cls)
    if rng.choices is not None
]

# Smaller budgets where a defense has them, so the suite runs in seconds.
FAST = {
    "steps": 20,
    "candidates": 3,
    "overlays": 8,
    "images_per_class": 1,
    "epochs": 2,
    "gen_steps": 20,
    "probe_steps": 10,
    "unlearn_epochs": 2,
    "inpainter_epochs": 2,
    "mae_epochs": 2,
    "rounds": 2,
    "masks_per_round": 2,
    "refine_steps": 2,
}


def make(name: str, seed: int = 0) -> Defense:
    cls = defense_class(name)
    fields = {f.name for f in dataclasses.fields(cls.config_cls)}
    config = dataclasses.replace(cls.config_cls(), **{k: v for k, v in FAST.items() if k in fields})
    return cls(config, seed=seed)


def snapshot(model: ArenaNet) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def flags(model: ArenaNet) -> tuple[list[bool], list[bool]]:
    return [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]


@pytest.mark.parametrize("name", NAMES)
def test_never_mutates_the_model(name: str, tiny: Splits, tiny_model: ArenaNet) -> None:
    before = snapshot(tiny_model)
    grads_before = [p.grad for p in tiny_model.parameters()]
    flags_before = flags(tiny_model)
    defense = make(name)
    deployed = defense.fit(tiny_model, tiny.val)
    deployed.predict(tiny.test.x)
    deployed.accept(tiny.test.x)
    defense.show(deployed, tiny.val, tiny.test)
    after = tiny_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.grad for p in tiny_model.parameters()] == grads_before
    assert flags(tiny_model) == flags_before, "train/eval modes and requires_grad stay as given"


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed(name: str, tiny: Splits, tiny_model: ArenaNet) -> None:
    a = make(name, seed=3).fit(tiny_model, tiny.val)
    b = make(name, seed=3).fit(tiny_model, tiny.val)
    x = tiny.test.x
    assert a.flagged == b.flagged
    assert a.details == b.details
    assert torch.equal(a.accept(x), b.accept(x))
    assert torch.equal(a.predict(x), b.predict(x))


@pytest.mark.parametrize("name", NAMES)
def test_deployment_shapes(name: str, tiny: Splits, tiny_model: ArenaNet) -> None:
    defense = make(name)
    deployed = defense.fit(tiny_model, tiny.val)
    x = tiny.test.x
    accepted, labels = deployed.accept(x), deployed.predict(x)
    assert accepted.dtype == torch.bool and accepted.shape == (len(x),)
    assert labels.shape == (len(x),) and int(labels.max()) < tiny.num_classes
    assert (deployed.flagged is None) == (defense.kind != "detector")
    assert defense.access in ("black-box", "white-box")


@pytest.mark.parametrize("name", NAMES)
def test_fits_a_config_sampled_from_its_search_space(
    name: str, tiny: Splits, tiny_model: ArenaNet
) -> None:
    """Any point of the defender's search space fits; seeded, so the same point every run (at
    most a few seconds each on tiny data, the search's full budgets included)."""
    cls = defense_class(name)
    space = config_space(cls.config_cls, num_classes=tiny.num_classes, prefix=f"{name}.")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask(fixed_distributions=space)
    config = config_from_params(cls.config_cls, trial.params, prefix=f"{name}.")
    deployed = cls(config, seed=0).fit(tiny_model, tiny.val)
    x = tiny.test.x
    accepted, labels, purified = deployed.accept(x), deployed.predict(x), deployed.purify(x)
    assert accepted.dtype == torch.bool and accepted.shape == (len(x),)
    assert labels.dtype == torch.long and labels.shape == (len(x),)
    assert int(labels.min()) >= 0 and int(labels.max()) < tiny.num_classes
    assert purified.shape == x.shape
    assert deployed.flagged is None or isinstance(deployed.flagged, bool)


@pytest.mark.parametrize("name", WHITE_BOX)
def test_white_box_defense_refuses_a_plain_module(name: str, tiny: Splits) -> None:
    plain = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(tiny.image_shape), tiny.num_classes))
    message = f"^{re.escape(name)} is a white-box defense and needs an Arena network"
    with pytest.raises(TypeError, match=message):
        make(name).fit(plain, tiny.val)


@pytest.mark.parametrize(("name", "field"), CHOICE_FIELDS)
def test_the_base_refuses_a_value_outside_a_fields_choices(name: str, field: str) -> None:
    cls = defense_class(name)
    choices = {f.name: rng.choices for f, rng in searchable_fields(cls.config_cls)}[field]
    assert choices is not None
    config = dataclasses.replace(cls.config_cls(), **{field: "sideways"})
    allowed = ", ".join(repr(c) for c in choices)
    message = f"{name}: {field}='sideways' is not a choice; choose one of {allowed}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        cls(config)


def test_registry_lists_every_defense_kind() -> None:
    assert {"none", "strip", "abs"} <= set(DEFENSES)
    assert {DEFENSES[n].kind for n in ("none", "strip", "abs")} == {"none", "filter", "detector"}
