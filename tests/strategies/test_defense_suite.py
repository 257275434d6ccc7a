"""The suite every registered defense must pass, on tiny data and a small trained model."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from arena.data import Splits
from arena.models import ArenaNet
from strategies import DEFENSES, defense_class
from strategies.defenses import Defense

NAMES = sorted(DEFENSES)

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


@pytest.mark.parametrize("name", NAMES)
def test_never_mutates_the_model(name: str, tiny: Splits, tiny_model: ArenaNet) -> None:
    before = snapshot(tiny_model)
    grads_before = [p.grad for p in tiny_model.parameters()]
    deployed = make(name).fit(tiny_model, tiny.val)
    deployed.predict(tiny.test.x)
    deployed.accept(tiny.test.x)
    after = tiny_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.grad for p in tiny_model.parameters()] == grads_before


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


def test_registry_lists_every_defense_kind() -> None:
    assert {"none", "strip", "abs"} <= set(DEFENSES)
    assert {DEFENSES[n].kind for n in ("none", "strip", "abs")} == {"none", "filter", "detector"}
