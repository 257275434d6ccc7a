"""The restoration networks of Februus and BDMAE: shapes, holes, and training once per cache."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch

import arena.core.cache
import strategies.defenses.restoration as restoration
from arena.core.cache import ArtifactCache
from arena.data import Split, Splits
from arena.models import ArenaNet
from strategies.defenses import Defense, Deployment
from strategies.defenses.bdmae import BDMAE, BDMAEConfig, BDMAEDeployment
from strategies.defenses.februus import Februus, FebruusConfig, FebruusDeployment
from strategies.defenses.restoration import (
    Restorer,
    box_masks,
    patch_masks,
    random_tokens,
    restore,
)


@pytest.mark.parametrize("side", [16, 17, 31, 224])
def test_restorer_fills_only_the_holes_at_any_size(side: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, side, side, generator=gen)
    mask = box_masks(2, side, side, gen)
    out = restore(Restorer(3).eval(), x, mask)
    assert out.shape == x.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(out * (1 - mask), x * (1 - mask))
    assert not torch.equal(out * mask, x * mask)


def test_masks() -> None:
    gen = torch.Generator().manual_seed(0)
    boxes = box_masks(200, 16, 16, gen, low=0.25, high=0.25, boxes=1)
    assert set(boxes.unique().tolist()) == {0.0, 1.0}
    assert boxes.sum(dim=(1, 2, 3)).unique().tolist() == [16.0]  # one 4x4 box each
    tokens = random_tokens(5, 4, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]), gen)
    assert tokens.sum(dim=(1, 2)).tolist() == [0.0, 4.0, 8.0, 12.0, 16.0]
    patches = patch_masks(50, 20, 20, gen, grids=(5, 5), ratios=(0.2, 0.2))
    assert patches.shape == (50, 1, 20, 20)
    assert patches.sum(dim=(1, 2, 3)).unique().tolist() == [80.0]  # 5 of 25 4x4 tokens


@pytest.mark.parametrize(
    ("defense", "kind"),
    [
        (Februus(FebruusConfig(inpainter_epochs=2), seed=0), "inpainter"),
        (BDMAE(BDMAEConfig(mae_epochs=2), seed=0), "mae"),
    ],
)
def test_trained_once_then_read_from_the_cache(
    defense: Defense,
    kind: str,
    tiny: Splits,
    tiny_model: ArenaNet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    fit = restoration.fit_restorer

    def counting(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        fit(*args, **kwargs)

    monkeypatch.setattr(restoration, "fit_restorer", counting)
    monkeypatch.setattr(arena.core.cache, "_MEMO", OrderedDict())
    defense.cache = ArtifactCache(str(tmp_path))

    def part(deployment: Deployment) -> dict[str, torch.Tensor]:
        assert isinstance(deployment, FebruusDeployment | BDMAEDeployment)
        net = deployment.inpainter if isinstance(deployment, FebruusDeployment) else deployment.mae
        return {k: v.clone() for k, v in net.state_dict().items()}

    first = part(defense.fit(tiny_model, tiny.val))
    assert len(calls) == 1 and len(list((tmp_path / kind).rglob("*.safetensors"))) == 1
    arena.core.cache._MEMO.clear()  # a fresh process: only the cache on disk remembers
    second = part(defense.fit(tiny_model, tiny.val))
    assert len(calls) == 1
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = Split(tiny.val.x.flip(3), tiny.val.y)  # other clean images: another part
    defense.fit(tiny_model, other)
    assert len(calls) == 2


def test_training_is_seeded(tiny: Splits, monkeypatch: pytest.MonkeyPatch) -> None:
    def weights(seed: int) -> dict[str, torch.Tensor]:
        monkeypatch.setattr(arena.core.cache, "_MEMO", OrderedDict())  # train again, no memory
        torch.manual_seed(seed + 100)  # whatever the global random state
        net = restoration.trained_restorer(
            None,
            "mae",
            tiny.val.x,
            patch_masks,
            {},
            restoration.RestorerRecipe(epochs=1),
            seed,
            version=1,
        )
        return net.state_dict()

    a, b, c = weights(0), weights(0), weights(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("channels", [1, 3])
def test_restorer_data_adds_shapes_at_the_clean_images_size(channels: int) -> None:
    clean = torch.rand(10, channels, 20, 16)
    assert restoration.restorer_images(clean, "val", 0) is clean
    both = restoration.restorer_images(clean, "val+shapes", 0)
    assert both.shape == (10 * (1 + restoration.SHAPES_PER_IMAGE), channels, 20, 16)
    assert torch.equal(both[:10], clean) and 0.0 <= float(both.min()) <= float(both.max()) <= 1.0
    assert torch.equal(both, restoration.restorer_images(clean, "val+shapes", 0))  # seeded
    with pytest.raises(ValueError, match="unknown restorer data 'imagenet'"):
        restoration.restorer_images(clean, "imagenet", 0)
    recipe = restoration.RestorerRecipe(epochs=60)
    assert restoration.same_steps(recipe, 10, 50).epochs == 12
    assert restoration.same_steps(recipe, 10, 10) == recipe
