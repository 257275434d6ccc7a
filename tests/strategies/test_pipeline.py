"""Defense pipelines compose their stages' verdicts, filters and purifications."""

from __future__ import annotations

import argparse
import re
from typing import Any

import pytest
import torch

from arena.core.infer import predict
from arena.data import Split, Splits
from arena.models import ArenaNet
from strategies.defenses import Deployment, Pipeline, build_defense, parse_defenses
from strategies.defenses.bdmae import BDMAEConfig, BDMAEDeployment
from strategies.defenses.fine_pruning import FinePruningConfig, FinePruningDeployment
from strategies.defenses.pipeline import PipelineDeployment
from strategies.defenses.strip import StripConfig

FAST_BDMAE = BDMAEConfig(rounds=2, masks_per_round=2, refine_steps=2, mae_epochs=2)


class Stage(Deployment):
    def __init__(self, model: torch.nn.Module, flagged: bool | None, keep: int, shift: float):
        super().__init__(model, flagged=flagged)
        self.keep, self.shift = keep, shift

    def accept(self, x: torch.Tensor) -> torch.Tensor:
        return torch.arange(len(x)) < self.keep

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


def test_composition(tiny_model: ArenaNet) -> None:
    x = torch.zeros(5, 3, 16, 16)
    a = Stage(tiny_model, flagged=None, keep=4, shift=1.0)
    b = Stage(tiny_model, flagged=False, keep=2, shift=2.0)
    both = PipelineDeployment([a, b])
    assert both.flagged is False
    assert both.accept(x).tolist() == [True, True, False, False, False]
    assert torch.equal(both.purify(x), x + 3.0)
    assert PipelineDeployment([a, Stage(tiny_model, True, 5, 0.0)]).flagged is True
    assert PipelineDeployment([a, a]).flagged is None


def test_build_and_fit_never_mutates(tiny: Splits, tiny_model: ArenaNet) -> None:
    pipe = build_defense(["strip", "abs"], seed=0)
    assert isinstance(pipe, Pipeline)
    assert pipe.name == "strip+abs" and pipe.kind == "detector" and pipe.access == "white-box"
    assert [s["name"] for s in pipe.describe()["pipeline"]] == ["strip", "abs"]
    assert build_defense(["strip"]).name == "strip"
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    cheap = build_defense(["strip", "bdmae"], [None, FAST_BDMAE], seed=0)
    deployed = cheap.fit(tiny_model, tiny.val)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    strip_alone = build_defense(["strip"], seed=0).fit(tiny_model, tiny.val)
    assert torch.equal(deployed.accept(tiny.test.x), strip_alone.accept(tiny.test.x))


def test_each_stage_fits_its_own_copy_of_what_the_stage_before_serves(
    tiny: Splits, tiny_model: ArenaNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = build_defense(
        ["strip", "fine-pruning"], [StripConfig(overlays=8), FinePruningConfig(epochs=1)], seed=0
    )
    assert isinstance(pipe, Pipeline)
    received: list[torch.nn.Module] = []
    for stage in pipe.stages:
        fit_copy = stage.fit_copy

        def spy(model: Any, clean: Split, fit_copy: Any = fit_copy) -> Deployment:
            received.append(model)
            return fit_copy(model, clean)

        monkeypatch.setattr(stage, "fit_copy", spy)
    deployed = pipe.fit(tiny_model, tiny.val)
    assert isinstance(deployed, PipelineDeployment)
    strip, pruning = deployed.stages
    assert isinstance(pruning, FinePruningDeployment)
    # one copy per stage and none of the pipeline's own: strip serves its copy of the given
    # model, fine-pruning repairs its copy of that and keeps the one it was given, unchanged
    assert len(received) == 2 and received[0] is strip.model and received[1] is pruning.model
    assert strip.model is not tiny_model and pruning.model is not strip.model
    assert pruning.original is strip.model
    given = tiny_model.state_dict()
    assert all(torch.equal(given[k], v) for k, v in strip.model.state_dict().items())


def test_a_white_box_stage_makes_the_pipeline_refuse_a_plain_module(tiny: Splits) -> None:
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10))
    pipe = build_defense(["strip", "fine-pruning"])
    with pytest.raises(TypeError, match=r"^strip\+fine-pruning is a white-box defense and needs"):
        pipe.fit(plain, tiny.val)


@pytest.mark.parametrize(
    "spec",
    ["strip+bdmae", "strip+februus+bdmae", "bdmae+februus", "februus+bdmae", "strip+abs",
     "bdmae+abs", "strip+bdmae+abs"],
)  # fmt: skip
def test_sensible_orders_are_accepted(spec: str) -> None:
    assert parse_defenses(spec) == spec.split("+")
    pipe = build_defense(spec.split("+"))
    assert pipe.name == spec


@pytest.mark.parametrize(
    ("spec", "problem", "fix"),
    [
        ("bdmae+strip", "puts filter strip after purifier bdmae", "strip+bdmae"),
        ("abs+bdmae", "puts purifier bdmae after detector abs", "bdmae+abs"),
        ("abs+strip+bdmae", "puts filter strip after detector abs", "strip+bdmae+abs"),
        ("februus+abs+bdmae", "puts purifier bdmae after detector abs", "februus+bdmae+abs"),
        ("strip+strip", "names strip twice", "tune its own parameters"),
        ("bdmae+strip+bdmae", "names bdmae twice", "tune its own parameters"),
        ("strip+none", "contains 'none', which does nothing", "use strip"),
        ("none+bdmae+none", "names none twice", "run it once"),
    ],
)
def test_senseless_pipelines_get_a_one_line_error(spec: str, problem: str, fix: str) -> None:
    for build in (lambda: parse_defenses(spec), lambda: build_defense(spec.split("+"))):
        with pytest.raises(ValueError, match=re.escape(problem)) as error:
            build()
        message = str(error.value)
        assert problem in message and fix in message and "\n" not in message
        assert spec in message


def test_strip_filters_then_bdmae_purifies(
    tiny: Splits, tiny_model: ArenaNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = build_defense(["strip", "bdmae"], [StripConfig(overlays=8), FAST_BDMAE], seed=0)
    assert pipe.kind == "filter" and pipe.access == "black-box"
    deployed = pipe.fit(tiny_model, tiny.val)
    strip = build_defense(["strip"], [StripConfig(overlays=8)], seed=0).fit(tiny_model, tiny.val)
    bdmae = build_defense(["bdmae"], [FAST_BDMAE], seed=0).fit(tiny_model, tiny.val)
    x = tiny.test.x
    purified = bdmae.purify(x)
    calls: list[int] = []
    purify = BDMAEDeployment.purify

    def counting(self: BDMAEDeployment, x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return purify(self, x)

    monkeypatch.setattr(BDMAEDeployment, "purify", counting)
    # STRIP judges the inputs as they come; BDMAE purifies what is served, and only that
    assert torch.equal(deployed.accept(x), strip.accept(x)) and calls == []
    assert torch.equal(deployed.purify(x), purified) and calls == [len(x)]
    assert torch.equal(deployed.predict(x), predict(tiny_model, purified))
    assert deployed.flagged is None
    assert deployed.details["stages"] == [strip.details, bdmae.details]


def test_pipeline_defense_parameters_on_the_command_line() -> None:
    from arena.cli.args import build_configs

    args = argparse.Namespace(defense_param=["strip.frr_target=0.01", "bdmae.grid=8"])
    strip, bdmae = build_configs(args, None, "strip+bdmae")["defense"]
    assert strip == StripConfig(frr_target=0.01) and bdmae == BDMAEConfig(grid=8)
    args = argparse.Namespace(defense_param=["grid=8"])
    with pytest.raises(ValueError, match=r"names no stage of strip\+bdmae; in a pipeline write"):
        build_configs(args, None, "strip+bdmae")
    with pytest.raises(ValueError, match="puts filter strip after purifier bdmae"):
        build_configs(argparse.Namespace(defense_param=None), None, "bdmae+strip")
