"""The defense interface: a model and the defender's clean data in, a deployment out.

Whatever a defense does (flag the model, filter inputs, purify inputs, repair the model), what
the payoff needs from it is the same :class:`Deployment`: a model-level verdict, which inputs it
lets through, and what the served system predicts for them. A defense implements one method,
:meth:`Defense.fit`, and must never change the model it is given (repairs work on a copy).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from arena.core.cache import ArtifactCache
from arena.core.config import config_to_dict
from arena.core.infer import predict
from arena.data.splits import Split
from arena.models.base import ArenaNet

Kind = Literal["none", "detector", "filter", "purifier"]
Access = Literal["black-box", "white-box"]


@dataclass(frozen=True)
class Panel:
    """One picture of what a defense sees or does, for ``arena show-defense``.

    ``kind="images"``: ``data`` is a ``(N, C, H, W)`` tensor in ``[0, 1]`` shown as a row of
    images with ``labels`` under them (reversed triggers per class, GradCAM masks,
    restorations). ``kind="histogram"``: ``data`` maps a series name to a 1-D tensor of scores
    (STRIP's entropies of clean and triggered inputs), with ``marker`` drawn as a vertical line
    (a threshold).
    """

    title: str
    kind: Literal["images", "histogram"]
    data: Any
    labels: tuple[str, ...] = ()
    marker: float | None = None


@dataclass(frozen=True)
class DefenseConfig:
    """Fields every defense shares (none yet); subclasses add their hyper-parameters."""


@dataclass
class Deployment:
    """What a fitted defense serves.

    ``flagged`` is the model-level verdict (``None`` for defenses that do not detect);
    ``details`` holds what the defense measured (thresholds, scores), JSON-ready.
    """

    model: nn.Module
    flagged: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def accept(self, x: torch.Tensor) -> torch.Tensor:
        """Which inputs pass the defense's input filter (all, unless it filters)."""
        return torch.ones(len(x), dtype=torch.bool)

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs as the defense cleans them before the model sees them (unchanged here)."""
        return x

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The served system's labels for ``x`` (purified inputs, possibly repaired model)."""
        return predict(self.model, self.purify(x))


class Defense(ABC):
    """Base of every defense. Subclasses set ``name``, ``summary``, ``kind``, ``access``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    kind: ClassVar[Kind]
    access: ClassVar[Access]
    config_cls: ClassVar[type[DefenseConfig]] = DefenseConfig

    def __init__(
        self,
        config: DefenseConfig | None = None,
        *,
        seed: int = 0,
        cache: ArtifactCache | None = None,
    ) -> None:
        self.config = config if config is not None else self.config_cls()
        if not isinstance(self.config, self.config_cls):
            raise TypeError(f"{self.name} takes a {self.config_cls.__name__}")
        self.seed = seed
        self.cache = cache  # where trained parts (an inpainter, an autoencoder) are kept

    @abstractmethod
    def fit(self, model: ArenaNet, clean: Split) -> Deployment:
        """Inspect or repair ``model`` using the defender's clean data; never mutate ``model``."""

    def show(self, deployment: Deployment, clean: Split, triggered: Split) -> list[Panel]:
        """What this defense saw or did with ``deployment`` (fitted by :meth:`fit`), on the
        defender's ``clean`` images and the attacker's ``triggered`` ones, as panels for
        ``arena show-defense``; none by default."""
        return []

    def describe(self) -> dict[str, Any]:
        """The defense's identity in cache keys: its name and full config, JSON-ready."""
        return {"name": self.name, "config": config_to_dict(self.config)}

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)
