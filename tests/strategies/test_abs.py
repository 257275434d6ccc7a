"""ABS's parts on hand-built inputs, and the scan on a tiny BadNet and its clean twin."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from arena.core.train import TrainConfig, train_classifier
from arena.data import Split, Splits
from arena.models import ArenaNet, build_model
from strategies.attacks.badnets import BadNets
from strategies.defenses.abs import (
    ABS,
    ABSConfig,
    apply_filters,
    filter_change,
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
    # a patch and a filter reversed per candidate neuron
    assert len(bad["candidates"]) == 2 * config.candidates
    assert [c["kind"] for c in bad["candidates"]] == ["patch"] * 4 + ["filter"] * 4
    assert all(0.0 <= c["reasr"] <= 1.0 for c in bad["candidates"])


def test_patch_grid_caps_positions_per_candidate() -> None:
    from strategies.defenses.abs import MAX_POSITIONS, patch_grid, positions

    rows, cols = patch_grid((0, 16, 0, 16), 4, (16, 16), 1)
    assert len(rows) * len(cols) <= MAX_POSITIONS
    assert rows[0] == 0 and rows[-1] == 12 and cols[-1] == 12, "the grid still spans the box"
    small = patch_grid((2, 10, 2, 10), 4, (16, 16), 2)  # 4 x 4 = 16 positions: unchanged
    assert small == (positions(2, 10, 4, 16, 2), positions(2, 10, 4, 16, 2))


def blue_tint_model() -> ArenaNet:
    """A pure colour-filter BadNet: one feature channel measures how much bluer than red and
    green each pixel is (from a small floor, so that black pixels pass a gradient), and label 1
    wins once its mean over the image passes 1/10. A blue tint over the whole image (a filter)
    gets there within a small change per pixel; a 6% patch of pure blue reaches about 0.08."""
    conv = nn.Conv2d(3, 2, 1)
    head = nn.Linear(2, 2)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, :, 0, 0] = torch.tensor([-1.0, -1.0, 1.0])  # blue over red and green
        conv.weight[1, 1, 0, 0] = 1.0  # green strokes
        conv.bias.copy_(torch.tensor([0.02, 0.0]))  # type: ignore[union-attr]
        head.weight.copy_(torch.tensor([[0.0, 0.0], [60.0, 0.0]]))
        head.bias.copy_(torch.tensor([0.0, -6.0]))
    stages = [
        ("features", nn.Sequential(conv, nn.ReLU())),
        ("head", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)),
    ]
    return ArenaNet("blue-toy", (3, 16, 16), 2, stages, feature_stages=("features",))


def test_a_filter_reversal_drives_the_neuron_of_a_colour_filter_backdoor() -> None:
    from tests.strategies.conftest import strokes

    model = blue_tint_model().eval()
    x = strokes(40, torch.Generator().manual_seed(0))
    assert (model(x).argmax(1) == 0).all()
    clean = Split(x, torch.zeros(40, dtype=torch.long))
    config = ABSConfig(candidates=2, window=1.0, images=8, steps=30)
    both = ABS(config, seed=0).fit(model, clean)
    found = both.details["candidates"]
    assert {c["kind"] for c in found} == {"patch", "filter"}
    filters = [c for c in found if c["kind"] == "filter" and c["label"] == 1]
    patches = [c for c in found if c["kind"] == "patch" and c["label"] == 1]
    assert filters and filters[0]["neuron"] == 0  # the blue channel, stimulated for label 1
    assert max(c["reasr"] for c in filters) == 1.0 > max(c["reasr"] for c in patches)
    assert both.flagged and both.details["suspect_kind"] == "filter" and both.named == [1]
    # the patch scan alone misses it
    patch_only = ABS(dataclasses.replace(config, reversal="patch"), seed=0).fit(model, clean)
    assert not patch_only.flagged
    # a colour mapping per pixel (a 1x1 kernel) is enough for a colour backdoor
    colour = dataclasses.replace(config, reversal="filter", filter_size=1)
    assert ABS(colour, seed=0).fit(model, clean).flagged


def test_a_reversed_filter_stays_within_its_budget_and_starts_as_the_identity() -> None:
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    weight, bias = torch.zeros(2, 3, 3, 3, 3), torch.zeros(2, 3)
    assert torch.equal(apply_filters(x, weight, bias), x.expand(2, *x.shape))
    bias[1, 2] = 0.3  # a blue tint on the second filter
    out = apply_filters(x, weight, bias)
    assert torch.equal(out[0], x) and torch.equal(out[1, :, 2], (x[:, 2] + 0.3).clamp(max=1.0))
    assert filter_change(x, weight, bias).tolist() == pytest.approx([0.0, 0.1])
    model = blue_tint_model().eval()
    front, _ = model.split("features")
    abs_ = ABS(ABSConfig(filter_budget=0.05, steps=20), seed=0)
    w, b = abs_._reverse_filters(front, x, torch.tensor([0, 1]), [(0, 8, 0, 8)] * 2)
    assert (filter_change(x, w, b) <= 0.05 + 1e-6).all() and filter_change(x, w, b).max() > 0.04


def test_the_scouts_rounds_carry_each_positions_adam_state(
    tiny: Splits, tiny_pair: tuple[ArenaNet, ArenaNet], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Successive halving drops positions between rounds; a survivor's path must be the one it
    # would take in one uninterrupted scout, so rounds that keep every position change nothing.
    import strategies.defenses.abs as abs_module

    badnet = tiny_pair[0].eval().requires_grad_(False)
    front, _ = badnet.split(badnet.feature_stages[-1])
    x = tiny.val.x[:6]
    neurons = torch.tensor([0, 3])
    wins = [(0, 2, 0, 2), (1, 3, 1, 3)]
    defense = ABS(ABSConfig(steps=30), seed=0)

    def reverse() -> tuple[torch.Tensor, torch.Tensor]:
        return defense._reverse(front, x, neurons, wins, torch.Generator().manual_seed(0))

    monkeypatch.setattr(abs_module, "SCOUT_ROUNDS", 1)
    one_mask, one_pattern = reverse()
    keep = abs_module._top
    monkeypatch.setattr(abs_module, "SCOUT_ROUNDS", 3)
    monkeypatch.setattr(
        abs_module, "_top", lambda score, idx, k: keep(score, idx, 1) if k == 1 else idx
    )
    kept_mask, kept_pattern = reverse()
    assert torch.equal(one_mask, kept_mask)
    torch.testing.assert_close(one_pattern, kept_pattern, rtol=0, atol=1e-5)
    monkeypatch.setattr(abs_module, "_top", keep)
    halved_mask, _ = reverse()  # each candidate still gets one patch of the same size
    assert halved_mask.shape == one_mask.shape
    assert (halved_mask.sum(dim=(1, 2, 3)) == one_mask.sum(dim=(1, 2, 3))).all()


def test_halving_keeps_a_third_of_each_candidates_positions_best_first() -> None:
    from strategies.defenses.abs import _split, _top

    assert _split(15, 3) == [5, 5, 5] and _split(4, 3) == [2, 1, 1] and _split(1, 3) == [1, 0, 0]
    score = torch.tensor([0.1, 0.9, 0.5, 0.9, 0.2, 0.3, 0.8])
    idx = torch.tensor([0, 1, 2, 3, 4, 5, 6])
    assert _top(score, idx, 3).tolist() == [1, 3, 6]  # ceil(7 / 3); ties: the earlier first
    assert _top(score, idx, 1).tolist() == [1]
    assert _top(score, torch.tensor([4]), 3).tolist() == [4]
