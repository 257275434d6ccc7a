"""LS's defining property: lipstick on the lower middle, at a place that varies per image."""

from __future__ import annotations

import torch

from strategies.attacks.ls import LS, LSConfig


def changed_centres(attack: LS, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(N, 2) centre (row, col) in pixels of each image's changed pixels."""
    out = attack.stamp(x, torch.Generator().manual_seed(seed))
    changed = (out - x).abs().amax(dim=1) > 0.05  # (N, H, W)
    h, w = changed.shape[-2:]
    rows = torch.arange(h).view(1, h, 1).float()
    cols = torch.arange(w).view(1, 1, w).float()
    count = changed.sum(dim=(1, 2)).float()
    return torch.stack(
        [(changed * rows).sum(dim=(1, 2)) / count, (changed * cols).sum(dim=(1, 2)) / count], 1
    )


def test_fixed_lipstick_sits_at_its_row_and_column_at_every_size() -> None:
    for side in (16, 48, 224):
        attack = LS(
            LSConfig(jitter=0.0, row=0.7, col=0.45), image_shape=(3, side, side), num_classes=10
        )
        centres = changed_centres(attack, torch.full((3, 3, side, side), 0.5))
        assert torch.equal(centres, centres[:1].expand(3, -1)), "no jitter: one place"
        row, col = (centres[0] + 0.5) / side
        assert abs(row - 0.7) < 0.04 and abs(col - 0.45) < 0.02


def test_jitter_moves_the_lipstick_per_image_within_its_bound() -> None:
    side, jitter = 64, 0.1
    attack = LS(LSConfig(jitter=jitter), image_shape=(1, side, side), num_classes=10)
    x = torch.full((40, 1, side, side), 0.5)
    centres = changed_centres(attack, x)
    fixed = changed_centres(
        LS(LSConfig(jitter=0.0), image_shape=(1, side, side), num_classes=10), x[:1]
    )[0]
    offsets = centres - fixed
    assert len(torch.unique(offsets.round(), dim=0)) > 10, "places vary between images"
    assert float(offsets.abs().max()) <= jitter * side + 1
    again = changed_centres(attack, x)
    assert torch.equal(centres, again), "the places come from the generator's seed"
