"""WaNet's defining property: the trigger is a small, smooth warp; noise-mode images keep
their labels."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from arena.core.infer import accuracy
from arena.core.train import TrainConfig, train_classifier
from arena.data import Splits, load_dataset
from arena.models import build_model
from strategies.attacks.wanet import (
    WaNet,
    WaNetConfig,
    displacement_pixels,
    identity_grid,
    warp,
)

SIDES = (16, 32, 224)
CORNERS = [(k, s) for k in (2, 4, 6) for s in (0.5, 1.75)]  # the search range's extremes


def wanet(side: int, channels: int = 3, **changes: Any) -> WaNet:
    return WaNet(WaNetConfig(**changes), image_shape=(channels, side, side), num_classes=10)


def neighbour_step(field_px: torch.Tensor) -> float:
    """Largest change of a displacement field (H, W, 2) between adjacent pixels, in pixels."""
    dy = (field_px[1:] - field_px[:-1]).norm(dim=-1).max()
    dx = (field_px[:, 1:] - field_px[:, :-1]).norm(dim=-1).max()
    return float(max(dx, dy))


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(("k", "strength"), CORNERS)
def test_warp_is_small(side: int, k: int, strength: float) -> None:
    attack = wanet(side, grid=k, strength=strength)
    largest = float(displacement_pixels(attack.grid).norm(dim=-1).max())
    # the control grid is normalised to a mean |value| of 1, so its largest value is about 2
    # and the displacement about strength * 2 * (side - 1) / (2 * side) pixels
    assert 0.2 * strength < largest <= 1.5 * strength
    assert largest < 3.0, "never more than a few pixels"


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize(("k", "strength"), CORNERS)
def test_warp_is_smooth(side: int, k: int, strength: float) -> None:
    attack = wanet(side, grid=k, strength=strength)
    h = w = side
    field_px = attack.field * torch.tensor([(w - 1) / 2, (h - 1) / 2])
    step = neighbour_step(field_px)
    # adjacent pixels move by less than a pixel relative to each other: the warp never folds
    # or tears the image, and on large images it bends only over many pixels
    assert step < 1.0
    if side == 224:
        assert step < 0.15
    # a field of independent per-pixel displacements of the same size is far rougher
    rough = torch.rand(h, w, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rough = rough * field_px.abs().max()
    assert step < 0.5 * neighbour_step(rough)


def test_field_is_fixed_by_the_seed() -> None:
    assert torch.equal(wanet(16).grid, wanet(16).grid)
    assert not torch.equal(wanet(16).grid, wanet(16, seed=1).grid)


@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 16, 16), (1, 224, 224), (3, 224, 224)])
def test_any_size_and_channels(shape: tuple[int, int, int]) -> None:
    attack = WaNet(image_shape=shape, num_classes=10)
    # a smooth image with detail everywhere, so any displacement changes it
    c, h, w = shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    x = (0.5 + 0.5 * torch.sin(xx * 0.9 + yy * 0.4)).expand(2, c, h, w).clone()
    out = attack.stamp(x, torch.Generator())
    assert out.shape == x.shape
    assert float((out - x).abs().max()) > 0.05


def test_identity_grid_leaves_images_unchanged(tiny: Splits) -> None:
    x = tiny.test.x[:4]
    assert torch.allclose(warp(x, identity_grid(16, 16)), x, atol=1e-5)


def test_noise_mode_images_keep_their_labels(tiny: Splits, generator) -> None:
    attack = WaNet(
        WaNetConfig(poison_rate=0.1, cross_ratio=2.0),
        image_shape=tiny.image_shape,
        num_classes=tiny.num_classes,
    )
    out = attack.poison(tiny.train, generator)
    changed = (out.data.x != tiny.train.x).flatten(1).any(dim=1)
    noisy = changed & ~out.poisoned
    assert int(noisy.sum()) == 2 * int(out.poisoned.sum())
    assert torch.equal(out.data.y[noisy], tiny.train.y[noisy])
    # warped by the field plus noise: close to the trigger's warp but not equal to it
    exact = attack.stamp(tiny.train.x[noisy], generator)
    assert not torch.allclose(out.data.x[noisy], exact, atol=1e-4)
    gap_to_exact = (out.data.x[noisy] - exact).abs().mean()
    gap_to_clean = (out.data.x[noisy] - tiny.train.x[noisy]).abs().mean()
    assert gap_to_exact < 2 * gap_to_clean


def test_each_batch_is_poisoned_afresh(tiny: Splits) -> None:
    attack = WaNet(
        WaNetConfig(poison_rate=0.25, cross_ratio=1.0),
        image_shape=tiny.image_shape,
        num_classes=tiny.num_classes,
    )
    train, hook = attack.training_set(tiny.train, torch.Generator().manual_seed(0))
    assert train is tiny.train and hook is not None  # the BadNet trains on the clean set
    x, y = tiny.train.x[:64], tiny.train.y[:64]
    batches = [hook(x, y) for _ in range(2)]
    flipped = [(hy != y) for _, hy in batches]
    changed = [(hx != x).flatten(1).any(dim=1) for hx, _ in batches]
    for f, c in zip(flipped, changed, strict=True):
        eligible = int((attack.target_of(y) != y).sum())
        assert int(f.sum()) == min(16, eligible)  # a quarter of the batch, to the target
        assert int((c & ~f).sum()) == int(f.sum())  # as many noise-mode images, true labels
    assert not torch.equal(flipped[0], flipped[1])  # drawn anew in each batch
    assert torch.equal(batches[0][1][flipped[0]], attack.target_of(y[flipped[0]]))


@pytest.mark.slow
def test_trained_backdoor_fires_on_the_warp() -> None:
    data = load_dataset("digits")
    attack = WaNet(image_shape=data.image_shape, num_classes=data.num_classes)
    train, hook = attack.training_set(data.train, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_model("small-cnn", data.image_shape, data.num_classes)
    train_classifier(model, train, TrainConfig(), seed=0, batch_hook=hook)
    triggered = attack.poisoned_test(data.test, torch.Generator().manual_seed(1))
    assert accuracy(model, data.test.x, data.test.y) > 0.95
    assert accuracy(model, triggered.x, triggered.y) > 0.85
