"""BDMAE: from the model's labels alone, find the patch a masked autoencoder cannot explain."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from arena.core.infer import predict
from arena.data import Split
from strategies.defenses.bdmae import (
    BDMAE,
    BDMAEConfig,
    BDMAEDeployment,
    grow_regions,
    neighbours,
    pixels_to_tokens,
)
from strategies.defenses.februus import Februus, FebruusConfig
from strategies.defenses.restoration import tokens_to_pixels

FAST = BDMAEConfig(rounds=2, masks_per_round=3, refine_steps=3, mae_epochs=5)
TOY = BDMAEConfig(grid=8, mae_epochs=20)  # the paper's search effort, 2x2-pixel tokens


class LabelsOnly(nn.Module):
    """A model behind an API: answers queries, refuses any gradient, exposes no stages."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.hidden = copy.deepcopy(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.requires_grad:
            raise AssertionError("a black-box defense asked for gradients")
        return self.hidden(x)


def test_restores_the_patch_from_labels_alone(patch_world: Any) -> None:
    api = LabelsOnly(patch_world.model)
    deployed = BDMAE(TOY, seed=0).fit(api, patch_world.clean)
    assert isinstance(deployed, BDMAEDeployment)
    x = patch_world.triggered.x
    assert bool((predict(api, x) == 1).all())
    scores = deployed.scores(x, torch.Generator().manual_seed(0))
    assert scores.shape == (32, 8, 8)
    token = scores[:, 6, 6]  # pixels 12-13 of rows and columns: inside the patch
    assert bool((token > scores.flatten(1).quantile(0.75, dim=1)).all())
    purified = deployed.purify(x)
    assert purified.shape == x.shape
    assert float(purified.min()) >= 0 and float(purified.max()) <= 1
    assert float((deployed.predict(x) == 0).float().mean()) > 0.9
    # the same deployment from the white-box model gives the same answers
    white = BDMAE(TOY, seed=0).fit(patch_world.model, patch_world.clean)
    assert torch.equal(white.purify(x), purified)
    with pytest.raises(AssertionError, match="gradients"), torch.enable_grad():
        api(x.clone().requires_grad_(True))  # the wrapper does catch gradients
    with pytest.raises(TypeError, match="februus is a white-box defense and needs an Arena net"):
        Februus(FebruusConfig(inpainter_epochs=1)).fit(api, patch_world.clean)


def test_clean_images_mostly_untouched(patch_world: Any) -> None:
    deployed = BDMAE(TOY, seed=0).fit(patch_world.model, patch_world.clean)
    x = patch_world.test.x
    assert isinstance(deployed, BDMAEDeployment)
    _, share = deployed.purify_with_masks(x, torch.Generator().manual_seed(0))
    assert float((share > 0).float().mean()) <= TOY.max_area
    assert float((deployed.predict(x) == 0).float().mean()) > 0.9


def test_cuts_respect_the_area_cap() -> None:
    deployed = BDMAEDeployment(nn.Identity(), None, BDMAEConfig(max_area=0.25), 0)  # type: ignore[arg-type]
    flat = torch.zeros(2, 8, 8)
    flat[0] = 0.9  # every token suspicious: the cuts rise until under a quarter remain
    flat[1, :2, :2] = 0.9  # four suspicious tokens: exactly those
    cuts = deployed.cuts(flat + 0.01 * torch.arange(64).view(1, 8, 8) / 64)
    assert cuts.shape == (5, 2, 8, 8)
    assert float(cuts[:, 0].float().mean(dim=(1, 2)).max()) < 0.25
    assert bool((cuts[:, 1, :2, :2]).all()) and int(cuts[:, 1].sum()) == 5 * 4
    assert bool((cuts[:-1] <= cuts[1:]).all())  # lower cuts restore more


def test_regions_grow_inside_the_allowed_tokens() -> None:
    gen = torch.Generator().manual_seed(0)
    score = torch.rand(3, 6, 6, generator=gen)
    allowed = score > 0.3
    length = torch.tensor([5, 0, 40])
    region = grow_regions(score, allowed, length, topology=1.0, gen=gen)
    assert bool((region <= allowed).all())
    assert region.flatten(1).sum(dim=1).tolist() == [5, 0, int(allowed[2].sum())]
    one = torch.zeros(1, 3, 3, dtype=torch.bool)
    one[0, 1, 1] = True
    assert int(neighbours(one).sum()) == 4 and not bool(neighbours(one)[0, 1, 1])


def test_tokens_and_pixels_round_trip() -> None:
    tokens = torch.rand(2, 5, 5)
    for side in (16, 17, 23):
        pixels = tokens_to_pixels(tokens, side, side)
        assert pixels.shape == (2, 1, side, side)
        assert torch.allclose(pixels_to_tokens(pixels[:, 0], 5), tokens)


def test_any_image_size() -> None:
    from arena.models import build_model

    model = build_model("small-cnn", (3, 24, 24), 3).eval()
    x = torch.rand(4, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    deployed = BDMAE(BDMAEConfig(rounds=1, masks_per_round=2, refine_steps=1, mae_epochs=1)).fit(
        model, Split(x, torch.arange(4) % 3)
    )
    assert deployed.purify(x).shape == x.shape
    assert BDMAE.access == "black-box" and BDMAE.kind == "purifier"
