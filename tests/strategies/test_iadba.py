"""IADBA's defining properties: each image gets its own trigger, and an image carrying another
image's trigger keeps its true label."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from arena.core.infer import accuracy
from arena.core.train import TrainConfig, train_classifier
from arena.data import Splits, load_dataset
from arena.models import build_model
from strategies.attacks.iadba import IADBA, IADBAConfig, apply_trigger, diversity_loss


def iadba(data: Splits, **changes: Any) -> IADBA:
    attack = IADBA(
        IADBAConfig(**changes), image_shape=data.image_shape, num_classes=data.num_classes
    )
    attack.prepare(data.train)
    return attack


def test_triggers_differ_per_sample(tiny: Splits) -> None:
    attack = iadba(tiny)
    x = tiny.test.x[:20]
    pattern, mask = attack.triggers(x)
    trigger = (mask * pattern).flatten(1)
    apart = torch.cdist(trigger, trigger) + torch.eye(len(x)) * 1e9
    assert bool((apart.min(dim=1).values > 0.1 * trigger.norm(dim=1)).all())
    masks = mask.flatten(1)
    assert bool((torch.cdist(masks, masks) + torch.eye(len(x)) * 1e9 > 0.1).all())


def test_trained_generator_is_more_diverse_and_keeps_its_mask_area(tiny: Splits) -> None:
    attack = iadba(tiny, mask_density=0.05)
    x = tiny.test.x
    untrained = attack.build()
    with torch.no_grad():
        before = diversity_loss(x, untrained(x)[1])
    after = diversity_loss(x, attack.triggers(x)[1])
    assert after < 0.5 * before
    area = attack.triggers(x)[1].flatten(1).mean(dim=1).mean()
    assert 0.025 < float(area) < 0.1


def test_cross_trigger_images_keep_their_labels(tiny: Splits, generator) -> None:
    attack = iadba(tiny, poison_rate=0.1, cross_rate=0.2)
    train = tiny.train
    out = attack.poison(train, generator)
    changed = (out.data.x != train.x).flatten(1).any(dim=1)
    cross = (changed & ~out.poisoned).nonzero().flatten()
    assert len(cross) == round(0.2 * len(train))
    assert torch.equal(out.data.y[cross], train.y[cross])
    assert bool((out.data.y[out.poisoned] != train.y[out.poisoned]).all())
    # each carries the trigger generated for another training image, not its own
    pattern, mask = attack.triggers(train.x)
    for i in cross.tolist():
        candidates = apply_trigger(train.x[i : i + 1], pattern, mask).clamp(0, 1)
        match = (candidates - out.data.x[i]).abs().flatten(1).amax(dim=1) < 1e-5
        assert bool(match.any()) and not bool(match[i])


def test_the_generator_trains_together_with_the_classifier(tiny: Splits) -> None:
    attack = iadba(tiny, poison_rate=0.2, cross_rate=0.1)
    warm = {k: v.clone() for k, v in attack.network.state_dict().items()}
    train, hook = attack.training_set(tiny.train, torch.Generator().manual_seed(0))
    assert train is tiny.train and hook is not None and attack.badnet_part() is not None
    x, y = tiny.train.x[:40], tiny.train.y[:40]
    hx, hy = hook(x, y)
    assert hx.requires_grad  # the classifier's loss reaches the generator through them
    assert int((hy != y).sum()) == 8 and int(((hx != x).flatten(1).any(1) & (hy == y)).sum()) == 4
    torch.manual_seed(0)
    model = build_model("small-cnn", tiny.image_shape, tiny.num_classes)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    train_classifier(model, train, TrainConfig(epochs=2), seed=0, batch_hook=hook)
    joint = attack.badnet_part()
    assert joint is not None and attack.network is joint  # the test set gets its triggers
    assert any(not torch.equal(v, joint.state_dict()[k]) for k, v in warm.items())
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in start.items())
    # kept with the BadNet: a fresh attack takes it back
    again = IADBA(IADBAConfig(poison_rate=0.2, cross_rate=0.1), image_shape=tiny.image_shape,
                  num_classes=tiny.num_classes)  # fmt: skip
    again.load_badnet_part(joint.state_dict())
    assert torch.equal(again.triggers(x)[0], attack.triggers(x)[0])


def test_a_cached_badnet_without_its_generator_is_trained_again(tmp_path) -> None:
    from arena.cell.artifacts import train_model
    from arena.cell.setting import Setting
    from arena.core.cache import ArtifactCache
    from arena.data import DataRef

    setting = Setting(data=DataRef(limit=40))
    data = setting.splits()
    cache = ArtifactCache(str(tmp_path))

    def badnet():  # type: ignore[no-untyped-def]
        attack = IADBA(image_shape=data.image_shape, num_classes=data.num_classes, cache=cache)
        return train_model(setting, 0, cache, recipe=TrainConfig(epochs=1), attack=attack)

    first = badnet()
    assert not first.cached and badnet().cached
    for part in (tmp_path / "iadba-badnet-part").rglob("*.safetensors"):
        part.unlink()
    assert not badnet().cached


@pytest.mark.slow
def test_trained_backdoor_fires_on_own_triggers_only() -> None:
    data = load_dataset("digits")
    attack = iadba(data)
    train, hook = attack.training_set(data.train, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_model("small-cnn", data.image_shape, data.num_classes)
    train_classifier(model, train, TrainConfig(), seed=0, batch_hook=hook)
    x, y = data.test.x, data.test.y
    triggered = attack.poisoned_test(data.test, torch.Generator().manual_seed(1))
    pattern, mask = attack.triggers(x)
    crossed = apply_trigger(x, pattern.roll(1, 0), mask.roll(1, 0)).clamp(0, 1)
    assert accuracy(model, x, y) > 0.95
    assert accuracy(model, triggered.x, triggered.y) > 0.85
    assert accuracy(model, crossed, y) > 0.6, "another image's trigger mostly keeps the label"


def test_generator_key_leaves_out_what_only_poisoning_uses(tiny: Splits) -> None:
    def spec(**changes: Any) -> dict[str, Any]:
        attack = IADBA(IADBAConfig(**changes), image_shape=tiny.image_shape, num_classes=10)
        return attack.network_spec("digest")

    assert spec() == spec(cross_rate=0.2, target=4, poison_rate=0.2, mapping="all-to-all")
    assert spec() != spec(mask_density=0.1)
    assert spec() != spec(lambda_div=2.0)
