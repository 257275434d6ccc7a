"""Defense pipelines compose their stages' verdicts, filters and purifications."""

from __future__ import annotations

import torch

from arena.data import Splits
from arena.models import ArenaNet
from strategies.defenses import Deployment, Pipeline, build_defense
from strategies.defenses.pipeline import PipelineDeployment


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
    cheap = build_defense(["strip", "none"], seed=0)
    deployed = cheap.fit(tiny_model, tiny.val)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())
    strip_alone = build_defense(["strip"], seed=0).fit(tiny_model, tiny.val)
    assert torch.equal(deployed.accept(tiny.test.x), strip_alone.accept(tiny.test.x))
