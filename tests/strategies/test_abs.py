"""ABS's parts on hand-built inputs, and the scan on a tiny BadNet and its clean twin."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from arena.core.train import TrainConfig, train_classifier
from arena.data import Splits
from arena.models import ArenaNet, build_model
from strategies.attacks.badnets import BadNets
from strategies.defenses.abs import (
    ABS,
    ABSConfig,
    positions,
    receptive_box,
    stimulation_scores,
    windows,
)


def test_windows_overlap_by_half_and_cover_the_map() -> None:
    assert windows(8, 8, 1.0) == [(0, 8, 0, 8)]
    wins = windows(8, 8, 0.5)
    assert len(wins) == 9 and all(r1 - r0 == 4 and c1 - c0 == 4 for r0, r1, c0, c1 in wins)
    covered = torch.zeros(8, 8, dtype=torch.bool)
    for r0, r1, c0, c1 in windows(7, 5, 0.5):
        covered[r0:r1, c0:c1] = True
    assert covered[:7, :5].all()


def test_patch_positions_step_by_stride_and_end_flush() -> None:
    assert positions(5, 16, 4, 16, 2) == [5, 7, 9, 11, 12]
    assert positions(0, 3, 4, 16, 1) == [0]  # a box smaller than the patch: one position


def test_stimulation_finds_the_planted_neuron_and_window() -> None:
    # Label 1's logit reads channel 0 at position (0, 0) only; label 0 has a head start.
    linear = nn.Linear(2 * 4 * 4, 3)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
        linear.weight[1, 0] = 5.0  # flattened index 0 is channel 0, row 0, column 0
    back = nn.Sequential(nn.Flatten(), linear)
    h = torch.rand(6, 2, 4, 4) * 0.1
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    wins = windows(4, 4, 0.5)
    scores = stimulation_scores(back, h, y, torch.linspace(0, 2, 5), wins, 3, 0.5)
    assert scores.shape == (2, len(wins), 3)
    hits = [w for w, (r0, _, c0, _) in enumerate(wins) if r0 == 0 and c0 == 0]
    assert (scores[0, hits, 1] > 5).all()
    assert scores[1, :, 1].max() < 0 and scores[0, hits[-1] + 1 :, 1].max() < 0


def test_receptive_box_of_a_convolution() -> None:
    conv = nn.Conv2d(1, 1, 3, padding=1)
    nn.init.constant_(conv.weight, 1.0)
    x = torch.rand(2, 1, 8, 8)
    assert receptive_box(conv, x, (0, 1, 0, 1)) == (0, 2, 0, 2)
    assert receptive_box(conv, x, (3, 5, 6, 8)) == (2, 6, 5, 8)


@pytest.fixture(scope="module")
def tiny_pair(tiny: Splits) -> tuple[ArenaNet, ArenaNet]:
    attack = BadNets(image_shape=tiny.image_shape, num_classes=tiny.num_classes)
    poisoned = attack.poison(tiny.train, torch.Generator().manual_seed(0)).data
    recipe = TrainConfig(epochs=20)
    models = []
    for train in (poisoned, tiny.train):
        torch.manual_seed(0)
        model = build_model("small-cnn", tiny.image_shape, tiny.num_classes)
        train_classifier(model, train, recipe, seed=0)
        models.append(model)
    return models[0], models[1]


def test_scan_points_at_the_badnet_target_and_not_at_the_clean_twin(
    tiny: Splits, tiny_pair: tuple[ArenaNet, ArenaNet]
) -> None:
    # Tiny budgets; on 150 images per split the models are weak and the REASRs noisy, so the
    # flag itself is checked on full digits (tests/arena/cell/test_cell.py).
    config = ABSConfig(steps=24, candidates=4)
    badnet, clean = tiny_pair
    bad = ABS(config, seed=0).fit(badnet, tiny.val).details
    good = ABS(config, seed=0).fit(clean, tiny.val).details
    assert bad["suspect_label"] == 0  # BadNets' default target
    assert bad["max_reasr"] >= 0.5 and bad["max_reasr"] > good["max_reasr"]
    assert len(bad["candidates"]) == config.candidates
    assert all(0.0 <= c["reasr"] <= 1.0 for c in bad["candidates"])


def test_patch_grid_caps_positions_per_candidate() -> None:
    from strategies.defenses.abs import MAX_POSITIONS, patch_grid, positions

    rows, cols = patch_grid((0, 16, 0, 16), 4, (16, 16), 1)
    assert len(rows) * len(cols) <= MAX_POSITIONS
    assert rows[0] == 0 and rows[-1] == 12 and cols[-1] == 12, "the grid still spans the box"
    small = patch_grid((2, 10, 2, 10), 4, (16, 16), 2)  # 4 x 4 = 16 positions: unchanged
    assert small == (positions(2, 10, 4, 16, 2), positions(2, 10, 4, 16, 2))
