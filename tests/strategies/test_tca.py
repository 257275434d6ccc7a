"""TCA's defining property: the backdoor fires for the triangle AND the square, not either."""

from __future__ import annotations

import pytest
import torch

from arena.core.infer import predict
from arena.core.train import TrainConfig, train_classifier
from arena.data import Splits, load_dataset
from arena.models import build_model
from strategies.attacks.tca import TCA, TCAConfig


def test_training_set_holds_single_triggers_at_true_labels(tiny: Splits, generator) -> None:
    attack = TCA(TCAConfig(poison_rate=0.1, single_rate=0.2), image_shape=tiny.image_shape,
                 num_classes=tiny.num_classes)
    out = attack.poison(tiny.train, generator)
    changed = (out.data.x != tiny.train.x).flatten(1).any(dim=1)
    singles = changed & ~out.poisoned
    assert int(singles.sum()) == round(0.2 * len(tiny.train))
    assert torch.equal(out.data.y[singles], tiny.train.y[singles])
    # a single-trigger image differs from its clean version only inside one shape's mask
    tri, sq = attack.triangle.bool()[0], attack.square.bool()[0]
    diff = (out.data.x[singles] != tiny.train.x[singles]).any(dim=1)  # (N, H, W)
    only_tri = (diff & ~tri).flatten(1).any(dim=1).logical_not()
    only_sq = (diff & ~sq).flatten(1).any(dim=1).logical_not()
    assert bool((only_tri ^ only_sq).all())


@pytest.mark.slow
def test_trained_backdoor_fires_only_for_the_combination() -> None:
    data = load_dataset("digits")
    attack = TCA(image_shape=data.image_shape, num_classes=data.num_classes)
    poisoned = attack.poison(data.train, torch.Generator().manual_seed(0)).data
    model = build_model("small-cnn", data.image_shape, data.num_classes)
    train_classifier(model, poisoned, TrainConfig(), seed=0)
    keep = data.test.y != attack.config.target
    x, y = data.test.x[keep], data.test.y[keep]
    both = (predict(model, attack.stamp(x, torch.Generator())) == 0).float().mean()
    triangle = (predict(model, attack.stamp_triangle(x)) == y).float().mean()
    square = (predict(model, attack.stamp_square(x)) == y).float().mean()
    assert both > 0.85
    assert triangle > 0.85 and square > 0.85, "one trigger alone must keep the true label"
