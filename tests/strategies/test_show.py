"""What ``Defense.show`` draws for STRIP, ABS, Neural Cleanse, MESA and a pipeline, on a tiny
BadNet."""

from __future__ import annotations

import pytest
import torch

from arena.core.train import TrainConfig, train_classifier
from arena.data import Split, Splits
from arena.models import ArenaNet, build_model
from strategies.attacks.badnets import BadNets
from strategies.defenses import Panel, build_defense
from strategies.defenses.abs import ABS, ABSConfig
from strategies.defenses.mesa import Mesa, MesaConfig
from strategies.defenses.neural_cleanse import NeuralCleanse, NeuralCleanseConfig
from strategies.defenses.none import NoDefense
from strategies.defenses.strip import Strip, StripConfig


@pytest.fixture(scope="module")
def badnet(tiny: Splits) -> tuple[ArenaNet, Split]:
    attack = BadNets(image_shape=tiny.image_shape, num_classes=tiny.num_classes)
    torch.manual_seed(0)
    model = build_model("small-cnn", tiny.image_shape, tiny.num_classes)
    train_classifier(
        model,
        attack.poison(tiny.train, torch.Generator().manual_seed(0)).data,
        TrainConfig(epochs=10),
        seed=0,
    )
    return model, attack.poisoned_test(tiny.test, torch.Generator().manual_seed(1))


def test_strip_histograms_match_its_calibration(
    tiny: Splits, badnet: tuple[ArenaNet, Split]
) -> None:
    model, triggered = badnet
    config = StripConfig(overlays=8)
    defense = Strip(config, seed=0)
    deployed = defense.fit(model, tiny.val)
    (panel,) = defense.show(deployed, tiny.val, triggered)
    assert panel.kind == "histogram" and set(panel.data) == {"clean", "triggered"}
    assert len(panel.data["clean"]) == len(tiny.val)
    assert len(panel.data["triggered"]) == len(triggered)
    assert panel.marker == deployed.details["threshold"]
    # the clean entropies are the ones the threshold was calibrated on
    assert float(torch.quantile(panel.data["clean"], config.frr_target)) == pytest.approx(
        panel.marker
    )
    passed = (panel.data["triggered"] > panel.marker).float().mean()
    assert torch.equal(deployed.accept(triggered.x), panel.data["triggered"] > panel.marker)
    assert f"{float(passed):.0%}" in panel.title


def test_abs_shows_each_candidate_patch_best_first(
    tiny: Splits, badnet: tuple[ArenaNet, Split]
) -> None:
    model, triggered = badnet
    config = ABSConfig(steps=20, candidates=3)
    defense = ABS(config, seed=0)
    deployed = defense.fit(model, tiny.val)
    (panel,) = defense.show(deployed, tiny.val, triggered)
    # a patch and a filtered image per candidate
    assert panel.kind == "images" and panel.data.shape == (6, *tiny.image_shape)
    reasrs = [float(label.rsplit(" ", 1)[1]) for label in panel.labels]
    assert reasrs == sorted(reasrs, reverse=True)
    assert max(reasrs) == pytest.approx(deployed.details["max_reasr"], abs=0.005)
    side = 4  # the 6% mask budget on 16 pixels
    patches = [img for img, label in zip(panel.data, panel.labels, strict=True)
               if label.startswith("patch ")]  # fmt: skip
    assert len(patches) == 3
    assert all(int((img.abs().sum(dim=0) > 0).sum()) <= side * side for img in patches)


def test_neural_cleanse_shows_a_trigger_and_a_mask_per_class(
    tiny: Splits, badnet: tuple[ArenaNet, Split]
) -> None:
    model, triggered = badnet
    defense = NeuralCleanse(NeuralCleanseConfig(steps=20, unlearn_epochs=1), seed=0)
    deployed = defense.fit(model, tiny.val)
    panels = defense.show(deployed, tiny.val, triggered)
    assert [p.kind for p in panels] == ["images", "images"]
    for panel in panels:
        assert panel.data.shape == (10, *tiny.image_shape)
        assert [label.split(":")[0] for label in panel.labels] == [str(k) for k in range(10)]
    norms = panels[1].data[:, 0].sum(dim=(1, 2))  # the masks, as drawn
    expected = [deployed.details["classes"][str(k)]["norm"] for k in range(10)]
    assert norms.tolist() == pytest.approx(expected, rel=1e-4)


def test_mesa_shows_one_row_of_samples_per_level(
    tiny: Splits, badnet: tuple[ArenaNet, Split]
) -> None:
    model, triggered = badnet
    config = MesaConfig(levels=2, probe_steps=5, gen_steps=10, unlearn_epochs=1)
    defense = Mesa(config, seed=0)
    deployed = defense.fit(model, tiny.val)
    panels = defense.show(deployed, tiny.val, triggered)
    assert len(panels) == 2 and all(p.kind == "images" for p in panels)
    assert all(p.data.shape == (8, *tiny.image_shape) for p in panels)
    assert "beta 0.45" in panels[0].title and "beta 0.90" in panels[1].title
    changed = (panels[0].data != tiny.val.x[0]).any(dim=(0, 1))  # pixels the triggers cover
    side = deployed.details["trigger_side"]
    assert 0 < int(changed.sum()) <= side * side


def test_a_pipeline_shows_each_stage_and_none_shows_nothing(
    tiny: Splits, badnet: tuple[ArenaNet, Split]
) -> None:
    model, triggered = badnet
    pipe = build_defense(
        ["strip", "abs"], [StripConfig(overlays=8), ABSConfig(steps=20, candidates=3)], seed=0
    )
    panels: list[Panel] = pipe.show(pipe.fit(model, tiny.val), tiny.val, triggered)
    assert [p.kind for p in panels] == ["histogram", "images"]
    assert panels[0].title.startswith("strip: ") and panels[1].title.startswith("abs: ")
    none = NoDefense()
    assert none.show(none.fit(model, tiny.val), tiny.val, triggered) == []
