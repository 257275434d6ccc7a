"""Fine-pruning's parts on hand-built layers, and its repair of the tiny model."""

from __future__ import annotations

import torch
from torch import nn

from arena.core.infer import logits
from arena.data import Splits
from arena.models import ArenaNet
from strategies.defenses.fine_pruning import (
    ChannelMask,
    FinePruning,
    FinePruningConfig,
    channel_means,
    prune_count,
)


def test_channel_mask_zeroes_the_pruned_channels_only() -> None:
    x = torch.rand(2, 3, 4, 4) + 0.1
    out = ChannelMask(torch.tensor([1.0, 0.0, 1.0]))(x)
    assert torch.equal(out[:, 0], x[:, 0]) and torch.equal(out[:, 2], x[:, 2])
    assert not out[:, 1].any()


def test_channel_means_average_over_images_and_positions() -> None:
    x = torch.zeros(2, 3, 2, 2)
    x[0, 1] = 2.0  # channel 1 is 2 on the first image, 0 on the second
    x[:, 2, 0, 0] = 4.0  # channel 2 is 4 at one position of four
    assert torch.allclose(channel_means(nn.Identity(), x), torch.tensor([0.0, 1.0, 1.0]))


def test_prune_count_stops_before_the_channel_the_task_needs() -> None:
    # Label = whether channel 3 (the most active, pruned last) is on: pruning 0-2 costs nothing,
    # pruning channel 3 drops accuracy to one half.
    h = torch.zeros(8, 4, 1, 1)
    h[:4, 3] = 1.0
    y = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])
    linear = nn.Linear(4, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[0.0, 0, 0, -1], [0.0, 0, 0, 1]]))
        linear.bias.zero_()
    back = nn.Sequential(nn.Flatten(), linear)
    order = torch.tensor([0, 1, 2, 3])
    count, accs = prune_count(back, h, y, order, most=4, tolerance=0.1)
    assert count == 3 and accs == [1.0, 1.0, 1.0, 1.0, 0.5]
    assert prune_count(back, h, y, order, most=2, tolerance=0.1)[0] == 2  # the ratio's cap
    assert prune_count(back, h, y, order, most=4, tolerance=0.6)[0] == 4  # a loose tolerance


def test_prunes_the_least_active_channels_and_the_count_follows_the_ratio(
    tiny: Splits, tiny_model: ArenaNet
) -> None:
    stage = tiny_model.feature_stages[-1]
    front, _ = tiny_model.split(stage)
    activation = channel_means(front, tiny.val.x)
    channels = len(activation)
    for ratio in (0.25, 0.5):
        cfg = FinePruningConfig(ratio=ratio, tolerance=1.0, epochs=0)
        deployed = FinePruning(cfg).fit(tiny_model, tiny.val)
        count = int(ratio * channels)
        pruned = deployed.details["pruned_channels"]
        assert deployed.details["pruned"] == count == len(pruned)
        assert sorted(pruned) == sorted(activation.argsort()[:count].tolist())
        assert float(activation[pruned].max()) <= float(activation[~_mask(pruned, channels)].min())
        # the repaired network's last feature stage is silent on the pruned channels
        repaired_front, _ = deployed.model.split(stage)  # type: ignore[operator]
        h = logits(repaired_front, tiny.test.x)
        assert not h[:, pruned].any() and h[:, ~_mask(pruned, channels)].any()


def test_the_tolerance_stops_pruning_early(tiny: Splits, tiny_model: ArenaNet) -> None:
    strict = FinePruning(FinePruningConfig(ratio=0.95, tolerance=0.0, epochs=0))
    loose = FinePruning(FinePruningConfig(ratio=0.95, tolerance=1.0, epochs=0))
    assert (
        strict.fit(tiny_model, tiny.val).details["pruned"]
        < loose.fit(tiny_model, tiny.val).details["pruned"]
    )


def test_fine_tuning_changes_the_copy_and_keeps_the_mask(
    tiny: Splits, tiny_model: ArenaNet
) -> None:
    cfg = FinePruningConfig(ratio=0.5, tolerance=1.0, epochs=2)
    deployed = FinePruning(cfg).fit(tiny_model, tiny.val)
    stage = tiny_model.feature_stages[-1]
    conv = next(m for m in tiny_model.modules() if isinstance(m, nn.Conv2d))
    conv_after = next(m for m in deployed.model.modules() if isinstance(m, nn.Conv2d))
    assert not torch.equal(conv.weight, conv_after.weight)
    front, _ = deployed.model.split(stage)  # type: ignore[operator]
    assert not logits(front, tiny.test.x)[:, deployed.details["pruned_channels"]].any()


def test_show_plots_clean_and_triggered_activations(tiny: Splits, tiny_model: ArenaNet) -> None:
    defense = FinePruning(FinePruningConfig(ratio=0.5, tolerance=1.0, epochs=0))
    deployed = defense.fit(tiny_model, tiny.val)
    triggered = tiny.test.subset(torch.arange(10))
    first, second = defense.show(deployed, tiny.val, triggered)
    assert first.kind == second.kind == "histogram"
    channels = deployed.details["channels"]
    assert [len(v) for v in first.data.values()] == [channels, channels]
    assert len(second.data["pruned channels"]) == deployed.details["pruned"]
    assert first.marker is not None


def _mask(index: list[int], n: int) -> torch.Tensor:
    out = torch.zeros(n, dtype=torch.bool)
    out[index] = True
    return out
