"""DeepSweep's augmentation policies, and its repair of the tiny model through the shared loop."""

from __future__ import annotations

from typing import Any

import kornia.filters as KF
import pytest
import torch

import strategies.defenses.tuning as tuning
from arena.core.infer import predict
from arena.data import Splits
from arena.models import ArenaNet
from strategies.defenses.deepsweep import (
    DeepSweep,
    DeepSweepConfig,
    apply_policy,
    random_affine,
)


def test_random_affine_moves_images_by_the_strength() -> None:
    x = torch.zeros(16, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0
    assert random_affine(x, 0.0, torch.Generator()) is x
    weak = random_affine(x, 0.25, torch.Generator().manual_seed(0))
    strong = random_affine(x, 2.0, torch.Generator().manual_seed(0))
    assert weak.shape == strong.shape == x.shape
    assert torch.equal(weak, random_affine(x, 0.25, torch.Generator().manual_seed(0)))
    assert (weak - x).abs().sum() < (strong - x).abs().sum()
    assert len({tuple(img.flatten().tolist()) for img in strong}) > 1  # one draw per image


def test_policies_compose_affine_and_median() -> None:
    x = torch.rand(4, 3, 16, 16)
    gen = torch.Generator
    assert torch.equal(apply_policy(x, "none", 1.0, 5, gen()), x)
    assert torch.equal(apply_policy(x, "median", 1.0, 5, gen()), KF.median_blur(x, 5))
    both = apply_policy(x, "affine+median", 0.5, 5, gen().manual_seed(1))
    moved = random_affine(x, 0.5, gen().manual_seed(1))
    assert torch.equal(both, KF.median_blur(moved, 5))
    with pytest.raises(ValueError, match="choose one of"):
        apply_policy(x, "rotate", 1.0, 3, gen())


def test_fine_tunes_a_copy_through_the_shared_loop(
    tiny: Splits, tiny_model: ArenaNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    run_loop = tuning.run_loop

    def spy(module: Any, tensors: Any, loss_fn: Any, config: Any, **kw: Any) -> Any:
        calls.append({"module": module, "epochs": config.epochs, "lr": config.lr})
        return run_loop(module, tensors, loss_fn, config, **kw)

    monkeypatch.setattr(tuning, "run_loop", spy)
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    cfg = DeepSweepConfig(epochs=2, lr=1e-3)
    deployed = DeepSweep(cfg).fit(tiny_model, tiny.val)
    assert len(calls) == 1 and calls[0]["epochs"] == 2 and calls[0]["lr"] == 1e-3
    assert calls[0]["module"] is deployed.model and deployed.model is not tiny_model
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    changed = [not torch.equal(before[k], v) for k, v in deployed.model.state_dict().items()]
    assert any(changed)
    x = tiny.test.x
    assert torch.equal(deployed.predict(x), predict(deployed.model, deployed.purify(x)))


def test_show_gives_the_transformed_inputs(tiny: Splits, tiny_model: ArenaNet) -> None:
    defense = DeepSweep(DeepSweepConfig(epochs=2))
    deployed = defense.fit(tiny_model, tiny.val)
    triggered = tiny.test.subset(torch.arange(6))
    panels = defense.show(deployed, tiny.val, triggered)
    assert [p.kind for p in panels] == ["images", "images"]
    assert torch.equal(panels[0].data, deployed.purify(triggered.x))
    assert len(panels[0].labels) == 6
