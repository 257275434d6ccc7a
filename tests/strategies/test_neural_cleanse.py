"""Neural Cleanse: the MAD outlier test by hand, a planted trigger class found on tiny data,
per-class details, the seeded class sample, and unlearning on a copy."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from arena.data import Splits
from arena.models import ArenaNet, build_model
from strategies.defenses.neural_cleanse import (
    NeuralCleanse,
    NeuralCleanseConfig,
    anomaly_indices,
    flagged_classes,
)

FAST = NeuralCleanseConfig(steps=200, batch=16, unlearn_epochs=2)


class Planted(ArenaNet):
    """``model`` (its stages, shared) plus a hand-planted backdoor: class ``target``'s logit grows
    by 15 times the mean brightness of the 2x2 box in the bottom-left corner (black on clean
    digits). An Arena network, as Neural Cleanse (white-box) requires."""

    def __init__(self, model: ArenaNet, target: int) -> None:
        stages = [(n, m) for n, m in model.stages.named_children() if n != "normalize"]
        super().__init__(
            model.arch, model.image_shape, model.num_classes, stages, model.feature_stages
        )
        self.normalize.load_state_dict(model.normalize.state_dict())
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bump = 15.0 * x[:, :, 14:16, 0:2].mean(dim=(1, 2, 3))
        onehot = torch.zeros(self.num_classes)
        onehot[self.target] = 1.0
        return super().forward(x) + bump[:, None] * onehot


def test_anomaly_index_by_hand() -> None:
    norms = torch.tensor([20.0, 22.0, 18.0, 21.0, 19.0, 5.0])
    # median 19.5; absolute deviations' median 1.5; MAD = 1.4826 * 1.5
    index = anomaly_indices(norms)
    assert index[5] == pytest.approx(14.5 / (1.4826 * 1.5), rel=1e-5)
    assert index[0] == pytest.approx(0.5 / (1.4826 * 1.5), rel=1e-5)
    assert flagged_classes(norms, 2.0).tolist() == [5]
    assert flagged_classes(norms, 7.0).tolist() == []
    big = torch.tensor([20.0, 22.0, 18.0, 21.0, 19.0, 60.0])  # an outlier above the median
    assert anomaly_indices(big)[5] > 2 and flagged_classes(big, 2.0).tolist() == []
    assert torch.equal(anomaly_indices(torch.full((4,), 3.0)), torch.zeros(4))


def test_a_planted_trigger_class_is_the_outlier(tiny: Splits, tiny_model: ArenaNet) -> None:
    model = Planted(tiny_model, target=3)
    # The other classes' reversed norms after 200 steps on a 4-epoch model spread widely and
    # move with float rounding (the planted class's index is 2.7 with two torch threads, 4.9
    # with one), so the flag is checked at the lower end of the threshold's range.
    config = dataclasses.replace(FAST, anomaly_threshold=1.5)
    deployed = NeuralCleanse(config, seed=0).fit(model, tiny.val)
    details = deployed.details
    assert set(details["classes"]) == {str(k) for k in range(10)}
    for entry in details["classes"].values():
        assert entry["norm"] > 0 and entry["anomaly_index"] >= 0 and "reached" in entry
    planted = details["classes"]["3"]
    others = [v["norm"] for k, v in details["classes"].items() if k != "3"]
    assert planted["norm"] < min(others) / 4  # a faint 2x2 patch suffices
    assert details["suspect_label"] == 3
    assert planted["anomaly_index"] == details["suspect_anomaly_index"] > 1.5
    assert deployed.flagged is True and 3 in details["flagged_classes"]
    assert deployed.named == details["flagged_classes"]  # the labels the flag names
    assert deployed.model is not model  # the unlearned copy is served


def test_max_classes_scans_a_seeded_sample(tiny: Splits) -> None:
    torch.manual_seed(0)
    model = build_model("small-cnn", tiny.image_shape, 20)
    config = dataclasses.replace(FAST, steps=5, max_classes=8)
    fits = [NeuralCleanse(config, seed=s).fit(model, tiny.val) for s in (0, 0, 1)]
    scanned = [sorted(int(k) for k in fit.details["classes"]) for fit in fits]
    assert len(scanned[0]) == 8 and len(set(scanned[0])) == 8
    assert all(0 <= k < 20 for k in scanned[0])
    assert scanned[0] == scanned[1] and scanned[0] != scanned[2]
    every = NeuralCleanse(dataclasses.replace(config, max_classes=20), seed=0)
    assert len(every.fit(model, tiny.val).details["classes"]) == 20


def test_the_oracle_target_reverses_and_unlearns_that_class_only(
    tiny: Splits, tiny_model: ArenaNet
) -> None:
    model = Planted(tiny_model, target=3)
    deployed = NeuralCleanse(dataclasses.replace(FAST, target=3), seed=0).fit(model, tiny.val)
    details = deployed.details
    assert details["oracle_target"] == 3 and set(details["classes"]) == {"3"}
    assert details["classes"]["3"]["reached"] and details["classes"]["3"]["anomaly_index"] is None
    # the planted 2x2 patch is found: a faint mask, far below a whole image's 256 pixels
    assert details["classes"]["3"]["norm"] < 16
    assert deployed.flagged is None and deployed.named is None  # a repair, not a verdict
    served = deployed.model
    assert served is not model
    changed = [
        not torch.equal(a, b)
        for a, b in zip(served.state_dict().values(), model.state_dict().values(), strict=True)
    ]
    assert any(changed)  # the unlearning fine-tuned the served copy
    with pytest.raises(ValueError, match="target 10 is not a class .*-1 to scan"):
        NeuralCleanse(dataclasses.replace(FAST, target=10), seed=0).fit(model, tiny.val)

