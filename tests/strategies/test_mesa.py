"""MESA: trigger sizes, the entropy estimate by hand, the staircase cache, and unlearning on
a copy of the model."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from arena.core.cache import ArtifactCache
from arena.data import Splits
from arena.models import ArenaNet
from strategies.defenses.mesa import (
    Mesa,
    MesaConfig,
    MesaDeployment,
    TriggerStaircase,
    nn_entropy,
    paste_at,
)

FAST = MesaConfig(probe_steps=5, gen_steps=10, unlearn_epochs=1, location="bottom-right")


def test_entropy_estimate_by_hand() -> None:
    points = torch.tensor([[0.0], [1.0], [3.0]])  # nearest distances 1, 1, 2
    assert float(nn_entropy(points)) == pytest.approx(math.log(2.0) / 3, abs=1e-5)
    spread, tight = torch.randn(32, 8), 0.01 * torch.randn(32, 8)
    assert nn_entropy(spread) > nn_entropy(tight)


def test_paste_at_broadcasts_and_leaves_the_input() -> None:
    x = torch.zeros(2, 3, 8, 8)
    patch = torch.ones(4, 1, 3, 2, 2)  # (4, 1, C, s, s) against (2, C, H, W)
    out = paste_at(x, patch, 5, 1)
    assert out.shape == (4, 2, 3, 8, 8) and not x.any()
    assert out[..., 5:7, 1:3].eq(1).all() and out.sum() == 4 * 2 * 3 * 4


@pytest.mark.parametrize(("size", "side"), [(0.25, 4), (0.4, 6), (0.1, 2)])
def test_sampled_triggers_have_the_configured_size(
    tiny: Splits, tiny_model: ArenaNet, size: float, side: int
) -> None:
    staircase = TriggerStaircase(levels=3, channels=3, side=side)
    triggers = staircase.sample(5, torch.Generator().manual_seed(0))
    assert triggers.shape == (5, 3, side, side)
    assert triggers.min() >= 0 and triggers.max() <= 1
    config = dataclasses.replace(FAST, trigger_size=size, levels=2)
    deployed = Mesa(config, seed=0).fit(tiny_model, tiny.val)
    assert isinstance(deployed, MesaDeployment) and deployed.samples is not None
    assert deployed.details["trigger_side"] == side
    assert deployed.samples.shape[0] == 2 and deployed.samples.shape[2:] == (3, side, side)


def test_unlearning_works_on_a_copy(tiny: Splits, tiny_model: ArenaNet) -> None:
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    deployed = Mesa(FAST, seed=0).fit(tiny_model, tiny.val)
    after = tiny_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert deployed.model is not tiny_model
    repaired = deployed.model.state_dict()
    assert any(not torch.equal(before[k], repaired[k]) for k in before)


def test_target_and_place_given_skip_the_probe(tiny: Splits, tiny_model: ArenaNet) -> None:
    config = dataclasses.replace(FAST, target=7, location="top-left")
    details = Mesa(config, seed=0).fit(tiny_model, tiny.val).details
    assert details["target"] == 7 and details["place"] == "top-left"
    assert list(details["probe"]) == ["7"] and list(details["probe"]["7"]) == ["top-left"]
    with pytest.raises(ValueError, match="not a class"):
        Mesa(dataclasses.replace(FAST, target=10), seed=0).fit(tiny_model, tiny.val)


def test_the_staircase_is_cached(tiny: Splits, tiny_model: ArenaNet, tmp_path: Path) -> None:
    cache = ArtifactCache(str(tmp_path))
    config = dataclasses.replace(FAST, gen_steps=11)  # a key no other test trained
    first = Mesa(config, seed=0, cache=cache).fit(tiny_model, tiny.val)
    assert cache.misses == 2 and cache.hits == 0  # the fit and the staircase: made, then saved
    assert len(list(tmp_path.glob("mesa-staircase/*/*.safetensors"))) == 1
    # another fit (its unlearning differs), on the same staircase
    other = dataclasses.replace(config, unlearn_epochs=config.unlearn_epochs + 1)
    second = Mesa(other, seed=0, cache=cache).fit(tiny_model, tiny.val)
    assert cache.misses == 3  # the new fit's only: the staircase is not trained again
    assert isinstance(first, MesaDeployment) and isinstance(second, MesaDeployment)
    assert first.samples is not None and second.samples is not None
    assert torch.equal(first.samples, second.samples)
    assert len(list(tmp_path.glob("mesa-staircase/*/*.safetensors"))) == 1
