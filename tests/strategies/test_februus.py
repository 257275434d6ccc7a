"""Februus: GradCAM finds the patch that drives the prediction; inpainting removes it."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from arena.core.infer import predict
from arena.data import Splits
from arena.models import ArenaNet
from strategies.defenses.februus import Februus, FebruusConfig, FebruusDeployment, grad_cam

FAST = FebruusConfig(inpainter_epochs=3)


def test_grad_cam_highlights_the_planted_patch(patch_world: Any) -> None:
    model: ArenaNet = patch_world.model
    front, back = model.split("features")
    for plus in (False, True):
        heat = grad_cam(front, back, patch_world.triggered.x, plus=plus)
        assert heat.shape == (32, 16, 16) and float(heat.min()) >= 0 and float(heat.max()) <= 1
        inside = heat[:, 12:15, 12:15]
        assert bool((inside == 1).all())  # the patch is where the prediction comes from
        outside = heat.clone()
        outside[:, 12:15, 12:15] = 0
        assert float(outside.max()) < 0.5  # and nothing else is


def test_removes_the_patch_and_restores_the_label(patch_world: Any) -> None:
    deployed = Februus(FAST, seed=0).fit(patch_world.model, patch_world.clean)
    assert isinstance(deployed, FebruusDeployment)
    x = patch_world.triggered.x
    heat, mask = deployed.locate(x)
    assert bool((mask[:, 0, 12:15, 12:15] == 1).all())
    assert float(mask.mean()) < 0.06  # the 9 patch pixels of 256, and little more
    purified = deployed.purify(x)
    assert purified.shape == x.shape
    assert float(purified.min()) >= 0 and float(purified.max()) <= 1
    assert torch.equal(purified * (1 - mask), x * (1 - mask))  # only removed pixels change
    assert bool((predict(patch_world.model, x) == 1).all())
    assert float((deployed.predict(x) == 0).float().mean()) > 0.9


def test_gradients_never_reach_the_model(tiny: Splits, tiny_model: ArenaNet) -> None:
    grads = [p.grad for p in tiny_model.parameters()]
    deployed = Februus(FAST, seed=0).fit(tiny_model, tiny.val)
    deployed.purify(tiny.test.x[:8])
    assert [p.grad for p in tiny_model.parameters()] == grads
    assert deployed.details["layer"] == tiny_model.feature_stages[-1]
    assert 0 < deployed.details["clean_removed_share"] < 0.5


@pytest.mark.parametrize("side", [17, 40])
def test_any_image_size(side: int) -> None:
    from arena.data import Split
    from arena.models import build_model

    model = build_model("small-cnn", (3, side, side), 3).eval()
    x = torch.rand(6, 3, side, side, generator=torch.Generator().manual_seed(0))
    clean = Split(x, torch.arange(6) % 3)
    deployed = Februus(FebruusConfig(inpainter_epochs=1, cam="gradcam++"), seed=0).fit(model, clean)
    assert deployed.purify(x).shape == x.shape


def test_show_draws_heat_and_restorations(patch_world: Any) -> None:
    defense = Februus(FAST, seed=0)
    deployed = defense.fit(patch_world.model, patch_world.clean)
    panels = defense.show(deployed, patch_world.test, patch_world.triggered)
    assert [p.title.split(":")[0].split()[0] for p in panels] == ["clean"] * 3 + ["triggered"] * 3
    heat = panels[4].data
    assert heat.shape == (8, 3, 16, 16) and float(heat.max()) <= 1
    assert bool((heat[:, 0, 12:15, 12:15] == 1).all())
    assert panels[5].labels == ("pred 0",) * 8 and panels[3].labels == ("pred 1",) * 8


def test_white_box_needs_the_network_inside() -> None:
    assert Februus.access == "white-box" and Februus.kind == "purifier"
    with pytest.raises(TypeError, match="februus is a white-box defense and needs an Arena net"):
        Februus(FAST).fit(nn.Linear(3, 2), None)  # type: ignore[arg-type]
