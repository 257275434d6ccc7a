"""Defense pipelines: ``strip+bdmae`` runs STRIP and BDMAE together, in the order written.

Le Roux et al. mix defenses (rejecting inputs with STRIP, then purifying the accepted ones with
BDMAE); a pipeline is how Arena plays such a mix as one defender strategy. Each stage is fitted
on the model the previous stage serves (a repair changes it; detectors, filters and input
purifiers pass it on). Each stage's :meth:`~strategies.defenses.base.Defense.fit` works on its
own copy of that model, so no stage changes what an earlier one serves, and the pipeline makes
no copy of its own. The served system is the composition of the stages:

* ``flagged``: any stage flags the model (``None`` if no stage detects);
* ``accept(x)``: every filter accepts, each stage seeing the input as the stages before it
  purified it;
* ``purify(x)``: every stage's purification, in order;
* ``predict(x)``: the last stage's model on the purified input.

Which pipelines make sense. A served system takes an input through a gate, cleans it, and
hands it to a model that was checked before deployment; a pipeline is written in that order,
by the stages' kinds: **filters, then purifiers (of inputs, or repairs of the model), then
detectors**. Anything else is refused with a one-line error that names the fix:

1. *A filter after a purifier* (``bdmae+strip``, ``fine-pruning+strip``). A filter's threshold
   is calibrated on the defender's clean images as they come, and it reads the backdoor's hold
   on the received model (STRIP: the trigger survives superimposition). Behind an input
   purifier it would judge images unlike those it was calibrated on, so its false-rejection
   rate is no longer the one it was set to; behind a repair it would read a model whose
   backdoor the repair has weakened. In front, it sees what it was calibrated for, and the
   purifiers still clean what it lets through.
2. *A detector before a purifier or a filter* (``abs+bdmae``, ``neural-cleanse+fine-pruning``).
   An input stage neither changes the model nor depends on the detector, so the order changes
   nothing and the detector-first spelling would only be a second name for the same strategy
   (the duel and the cache tell strategies apart by their stage lists). Before a repair the
   order does matter: the detector would judge the model as received while the repaired one
   is served; last, its verdict is about the model actually deployed.
3. *A defense named twice* (``strip+strip``). Its two stages would share one set of searched
   parameters (the defender's space names them ``<defense>.<field>``), and a second copy only
   repeats the first; a stronger setting of its own parameters is the way to ask for more.
4. *``none`` in a pipeline* (``strip+none``). It does nothing; the pipeline without it is the
   same strategy.

Stages of the same kind keep the order written: ``shrinkpad+bdmae`` and ``bdmae+shrinkpad``
transform inputs in different orders, and both are sensible.

A pipeline is not registered under a name of its own: :func:`build_defense` makes one from
any ``+``-joined list of registered names, with one config per stage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from arena.core.cache import ArtifactCache
from arena.data.splits import Split
from strategies.defenses.base import Defense, DefenseConfig, Deployment, Kind, Panel
from strategies.registry import DEFENSES, lookup

KIND_ORDER: tuple[Kind, ...] = ("none", "purifier", "filter", "detector")
STAGE_ORDER: tuple[Kind, ...] = ("filter", "purifier", "detector")
"""The order of kinds along a pipeline (see the module docstring)."""


def check_pipeline(stages: Sequence[tuple[str, Kind]]) -> None:
    """Refuse a pipeline of ``(name, kind)`` stages that makes no sense (the module docstring's
    rules), with a one-line error that names the problem and the fix."""
    if len(stages) < 2:
        return
    spec = "+".join(name for name, _ in stages)
    names = [name for name, _ in stages]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(
                f"defense pipeline {spec!r} names {name} twice; run it once and tune its own "
                "parameters instead"
            )
    if "none" in names:
        rest = "+".join(n for n in names if n != "none")
        raise ValueError(
            f"defense pipeline {spec!r} contains 'none', which does nothing; use {rest or 'none'}"
        )
    rank = [STAGE_ORDER.index(kind) for _, kind in stages]
    for i in range(1, len(stages)):
        late = [j for j in range(i) if rank[j] > rank[i]]
        if late:
            (first, first_kind), (name, kind) = stages[late[0]], stages[i]
            order = sorted(range(len(names)), key=rank.__getitem__)  # stable: ties keep order
            fixed = "+".join(names[j] for j in order)
            raise ValueError(
                f"defense pipeline {spec!r} puts {kind} {name} after {first_kind} {first}; "
                f"stages go filters, then purifiers, then detectors: {fixed}"
            )


class PipelineDeployment(Deployment):
    """The served system of a pipeline (see the module docstring)."""

    def __init__(self, stages: Sequence[Deployment]) -> None:
        verdicts = [d.flagged for d in stages if d.flagged is not None]
        # the labels named by the stages that flag (or by every stage that names any, when
        # none flags)
        naming = [d for d in stages if d.named is not None]
        flagging = [d for d in naming if d.flagged] or naming
        super().__init__(
            stages[-1].model,
            flagged=any(verdicts) if verdicts else None,
            details={"stages": [d.details for d in stages]},
            named=sorted({k for d in flagging for k in d.named or []}) if naming else None,
        )
        self.stages = list(stages)

    def accept(self, x: torch.Tensor) -> torch.Tensor:
        ok = torch.ones(len(x), dtype=torch.bool)
        # inputs are purified only as far as the last stage that filters (a stage that keeps
        # Deployment.accept accepts everything), so a purifier at the end runs once, in predict
        filters = [i for i, s in enumerate(self.stages) if type(s).accept is not Deployment.accept]
        for i, stage in enumerate(self.stages[: max(filters, default=-1) + 1]):
            if i in filters:
                ok &= stage.accept(x)
            if i < filters[-1]:
                x = stage.purify(x)
        return ok

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage.purify(x)
        return x


class Pipeline(Defense[DefenseConfig]):
    """Several defenses fitted and served in order."""

    name = "pipeline"
    version = 1  # how stages are composed; each stage's own version is in its describe()
    summary = "defenses run in order; the served system composes them"
    access = "black-box"

    def __init__(self, stages: Sequence[Defense]) -> None:
        if len(stages) < 2:
            raise ValueError("a pipeline needs at least two defenses")
        check_pipeline([(s.name, s.kind) for s in stages])
        super().__init__(DefenseConfig(), seed=stages[0].seed, cache=stages[0].cache)
        self.stages = list(stages)
        # name, kind and access are class constants of a single defense, but a pipeline's
        # come from its stages: these three set them on the instance, which mypy refuses
        self.name = "+".join(s.name for s in stages)  # type: ignore[misc]
        # the strongest kind decides how the cell is evaluated (a detector's clean check)
        self.kind = max((s.kind for s in stages), key=KIND_ORDER.index)  # type: ignore[misc]
        if any(s.access == "white-box" for s in stages):
            self.access = "white-box"  # type: ignore[misc,assignment]

    def describe(self) -> dict[str, Any]:
        return {"pipeline": [s.describe() for s in self.stages], "version": self.version}

    def fit(self, model: nn.Module, clean: Split) -> Deployment:
        """Check ``model`` as the base does (an Arena network if any stage is white-box), then
        fit the stages in order, with no copy here: each stage's own ``fit`` copies."""
        self.check_model(model)
        return self.fit_copy(model, clean)

    def fit_copy(self, model: nn.Module, clean: Split) -> Deployment:
        """The stages fitted in order, each on the model the stage before serves; ``model`` is
        the caller's here (see :meth:`fit`), and only the stages' ``fit`` ever copy it."""
        deployed: list[Deployment] = []
        current = model
        for stage in self.stages:
            deployment = stage.fit(current, clean)
            deployed.append(deployment)
            current = deployment.model
        return PipelineDeployment(deployed)

    def show(self, deployment: Deployment, clean: Split, triggered: Split) -> list[Panel]:
        """Every stage's panels in order, titled by stage, each stage shown the inputs as the
        stages before it purified them."""
        assert isinstance(deployment, PipelineDeployment)
        panels: list[Panel] = []
        last = len(self.stages) - 1
        for i, (stage, deployed) in enumerate(zip(self.stages, deployment.stages, strict=True)):
            for panel in stage.show(deployed, clean, triggered):
                panels.append(dataclasses.replace(panel, title=f"{stage.name}: {panel.title}"))
            if i < last:  # what the next stage sees; after the last, no stage would
                clean = Split(deployed.purify(clean.x), clean.y)
                triggered = Split(deployed.purify(triggered.x), triggered.y)
        return panels


def parse_defenses(spec: str) -> list[str]:
    """The stage names of ``"a+b+c"``, each checked against the registry, and together against
    the rules of the module docstring."""
    if "," in spec or spec.strip() == "all":
        raise ValueError(
            f"{spec!r} names several defenses, and this plays one (or one pipeline, joined by "
            "'+'); `arena duel --defender a,b` or `--defender all` lets the defender choose"
        )
    names = [part.strip() for part in spec.split("+")]
    if any(not n for n in names):
        raise ValueError(f"bad defense pipeline {spec!r}; join names with '+', e.g. strip+bdmae")
    check_pipeline([(n, lookup(DEFENSES, "defense", n).kind) for n in names])
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
