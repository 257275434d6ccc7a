"""Defense pipelines: ``strip+abs`` runs STRIP and ABS together, in the order written.

Le Roux et al. mix input purification with model-level defenses; a pipeline is how Arena plays
such a mix as one defender strategy. Each stage is fitted on the model the previous stage
serves (a repair changes it; detectors and filters pass it on), and the served system is the
composition of the stages:

* ``flagged``: any stage flags the model (``None`` if no stage detects);
* ``accept(x)``: every filter accepts, each stage seeing the input as the stages before it
  purified it;
* ``purify(x)``: every stage's purification, in order;
* ``predict(x)``: the last stage's model on the purified input.

A pipeline is not registered under a name of its own: :func:`build_defense` makes one from
any ``+``-joined list of registered names, with one config per stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arena.cache import ArtifactCache
from arena.data.splits import Split
from arena.models.base import ArenaNet
from strategies.defenses.base import Defense, DefenseConfig, Deployment, Kind
from strategies.registry import DEFENSES, lookup

KIND_ORDER: tuple[Kind, ...] = ("none", "purifier", "filter", "detector")


class PipelineDeployment(Deployment):
    """The served system of a pipeline (see the module docstring)."""

    def __init__(self, stages: Sequence[Deployment]) -> None:
        verdicts = [d.flagged for d in stages if d.flagged is not None]
        super().__init__(
            stages[-1].model,
            flagged=any(verdicts) if verdicts else None,
            details={"stages": [d.details for d in stages]},
        )
        self.stages = list(stages)

    def accept(self, x: torch.Tensor) -> torch.Tensor:
        ok = torch.ones(len(x), dtype=torch.bool)
        for stage in self.stages:
            ok &= stage.accept(x)
            x = stage.purify(x)
        return ok

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage.purify(x)
        return x


class Pipeline(Defense):
    """Several defenses fitted and served in order."""

    name = "pipeline"
    summary = "defenses run in order; the served system composes them"
    access = "black-box"

    def __init__(self, stages: Sequence[Defense]) -> None:
        if len(stages) < 2:
            raise ValueError("a pipeline needs at least two defenses")
        super().__init__(DefenseConfig(), seed=stages[0].seed, cache=stages[0].cache)
        self.stages = list(stages)
        self.name = "+".join(s.name for s in stages)  # type: ignore[misc]
        # the strongest kind decides how the cell is evaluated (a detector's clean check)
        self.kind = max((s.kind for s in stages), key=KIND_ORDER.index)  # type: ignore[misc]
        if any(s.access == "white-box" for s in stages):
            self.access = "white-box"  # type: ignore[misc,assignment]

    def describe(self) -> dict[str, Any]:
        return {"pipeline": [s.describe() for s in self.stages]}

    def fit(self, model: ArenaNet, clean: Split) -> Deployment:
        deployed: list[Deployment] = []
        current = model
        for stage in self.stages:
            deployment = stage.fit(current, clean)
            deployed.append(deployment)
            current = deployment.model  # type: ignore[assignment]
        return PipelineDeployment(deployed)


def parse_defenses(spec: str) -> list[str]:
    """The stage names of ``"a+b+c"``, each checked against the registry."""
    names = [part.strip() for part in spec.split("+")]
    if any(not n for n in names):
        raise ValueError(f"bad defense pipeline {spec!r}; join names with '+', e.g. strip+abs")
    for name in names:
        lookup(DEFENSES, "defense", name)
    return names


def build_defense(
    names: Sequence[str],
    configs: Sequence[DefenseConfig | None] | None = None,
    *,
    seed: int = 0,
    cache: ArtifactCache | None = None,
) -> Defense:
    """One defense, or a :class:`Pipeline` of several, by registered names."""
    configs = list(configs) if configs is not None else [None] * len(names)
    stages: list[Any] = [
        lookup(DEFENSES, "defense", n)(c, seed=seed, cache=cache)
        for n, c in zip(names, configs, strict=True)
    ]
    return stages[0] if len(stages) == 1 else Pipeline(stages)
