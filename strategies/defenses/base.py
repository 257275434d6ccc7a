"""The defense interface: a model and the defender's clean data in, a deployment out.

Whatever a defense does (flag the model, filter inputs, purify inputs, repair the model), what
the payoff needs from it is the same :class:`Deployment`: a model-level verdict, which inputs it
lets through, and what the served system predicts for them.

A defense implements one method, :meth:`Defense.fit_copy`; callers call :meth:`Defense.fit`,
which the base owns. It checks the model (a white-box defense needs an :class:`ArenaNet` to reach
inside) and hands ``fit_copy`` a copy of it (``copy.deepcopy``), so that no defense ever changes
the model it is given: a repair changes the copy, an inspection may put it in eval mode or
freeze it, and the deployment serves that copy. Every defense gets a copy, not only those that
only query the model: a model cannot cheaply be proven unchanged afterwards (tensor version
counters miss writes through ``.data`` and buffers replaced by a move between devices; a digest
of the weights costs more than the copy), and a copy costs little beside any defense's fitting.

A defense built with an artifact cache keeps what it fits there (:mod:`strategies.defenses.fits`):
:meth:`Defense.fit` first looks for a deployment stored under the content key of the model's
weights, the defense, its seed and the clean data, and stores what it fits, so the same fit is
never done twice, whoever asks. A deployment that cannot be stored is served all the same.

The base is generic in its config, as the attack base is: ``class Strip(Defense[StripConfig])``
gives ``self.config`` the type ``StripConfig``, while ``config_cls`` stays the class the registry,
the CLI and the search spaces read. It also checks that each field that declares ``choices``
holds one of them.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast

import torch
from torch import nn

from arena.core.cache import ArtifactCache
from arena.core.config import Validated, config_to_dict
from arena.core.infer import predict
from arena.data.splits import Split
from arena.models.base import ArenaNet
from strategies.choices import check_choices
from strategies.defenses.fits import fit_key, load_fit, save_fit

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
class DefenseConfig(Validated):
    """Fields every defense shares (none yet); subclasses add their hyper-parameters. Every
    field is checked against its valid domain when the config is built (:class:`Validated`)."""


@dataclass
class Deployment:
    """What a fitted defense serves.

    ``flagged`` is the model-level verdict (``None`` for defenses that do not detect);
    ``details`` holds what the defense measured (thresholds, scores), JSON-ready; ``named`` the
    labels a detector suspects of being a backdoor's target (``None`` for a defense that names
    none), so that a flag can be told right (it names a target of the attack) from a flag of
    the model for another label.
    """

    model: nn.Module
    flagged: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)
    named: list[int] | None = None

    def accept(self, x: torch.Tensor) -> torch.Tensor:
        """Which inputs pass the defense's input filter (all, unless it filters)."""
        return torch.ones(len(x), dtype=torch.bool)

    def purify(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs as the defense cleans them before the model sees them (unchanged here)."""
        return x

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The served system's labels for ``x`` (purified inputs, possibly repaired model)."""
        return predict(self.model, self.purify(x))

    @classmethod
    def served_model(
        cls, given: nn.Module, state: dict[str, torch.Tensor], fields: dict[str, Any]
    ) -> nn.Module:
        """A copy of the model the defense was given, shaped as this deployment's served
        model before the stored weights ``state`` are loaded into it (``fields``: the
        deployment's other fields); unchanged here. A repair that changes the network's
        structure (Fine-pruning's channel masks) redoes that change, so that a fit read back
        from the cache serves the same network (:mod:`strategies.defenses.fits`)."""
        return given


C = TypeVar("C", bound=DefenseConfig)


class Defense(ABC, Generic[C]):
    """Base of every defense. Subclasses set ``name``, ``version``, ``summary``, ``kind``,
    ``access`` and ``config_cls`` (the runtime class of ``C``), and implement :meth:`fit_copy`."""

    name: ClassVar[str]
    version: ClassVar[int]
    """Raised by one whenever a change alters what the defense does (its verdict, its repair,
    a part it trains): it enters the cache key of every verdict, trained part and cell of the
    defense, and the name of every duel that plays it. Each defense class declares its own."""
    summary: ClassVar[str]
    kind: ClassVar[Kind]
    access: ClassVar[Access]
    config_cls: ClassVar[type[DefenseConfig]] = DefenseConfig
    caches_fit: ClassVar[bool] = True
    """Whether :meth:`fit` keeps its deployments in the cache; ``False`` where reading one back
    would cost more than fitting (a defense that only stores its config) or where the
    deployment holds a network of its own (whose training is cached as a part instead)."""

    def __init__(
        self,
        config: C | None = None,
        *,
        seed: int = 0,
        cache: ArtifactCache | None = None,
    ) -> None:
        given = config if config is not None else self.config_cls()
        if not isinstance(given, self.config_cls):
            raise TypeError(f"{self.name} takes a {self.config_cls.__name__}")
        check_choices(self.name, given)
        # config_cls is C at run time (a ClassVar cannot name a type variable)
        self.config: C = cast(C, given)
        self.seed = seed
        self.cache = cache  # where trained parts (an inpainter, an autoencoder) are kept

    def fit(self, model: nn.Module, clean: Split) -> Deployment:
        """Inspect or repair ``model`` using the defender's clean data: :meth:`fit_copy` on a
        copy of ``model``, which is never changed. With a cache, the deployment is read from
        it when this fit was done before, and stored there otherwise."""
        self.check_model(model)
        key = None
        if self.cache is not None and self.caches_fit:
            key = fit_key(self.describe(), self.seed, model, clean)
            hit = load_fit(self.cache, key, model, clean, Deployment)
            if hit is not None:
                return hit
        own = copy.deepcopy(model)
        # checked above: an ArenaNet for white-box defenses; black-box ones that take any
        # module say so by declaring ``model: nn.Module``
        deployment = self.fit_copy(cast(ArenaNet, own), clean)
        if key is not None and self.cache is not None:
            header = {"kind": "fit", "defense": self.describe(), "seed": self.seed}
            save_fit(self.cache, key, deployment, model, clean, header)
        return deployment

    def check_model(self, model: nn.Module) -> None:
        """Refuse, with a one-line ``TypeError``, a model this defense cannot work on: anything
        but a torch module, and for a white-box defense anything but an Arena network."""
        if self.access == "white-box" and not isinstance(model, ArenaNet):
            raise TypeError(
                f"{self.name} is a white-box defense and needs an Arena network "
                f"(arena.models.ArenaNet) to reach inside; got a {type(model).__name__}"
            )
        if not isinstance(model, nn.Module):
            raise TypeError(f"{self.name} needs a torch nn.Module; got a {type(model).__name__}")

    @abstractmethod
    def fit_copy(self, model: ArenaNet, clean: Split) -> Deployment:
        """The deployment of this defense on ``model``, fitted with the defender's clean data.
        ``model`` is this defense's own copy (callers call :meth:`fit`, which makes it): it may
        be changed, and the deployment may serve it. Black-box defenses that accept any module
        declare ``model: nn.Module``."""

    def show(self, deployment: Deployment, clean: Split, triggered: Split) -> list[Panel]:
        """What this defense saw or did with ``deployment`` (fitted by :meth:`fit`), on the
        defender's ``clean`` images and the attacker's ``triggered`` ones, as panels for
        ``arena show-defense``; none by default."""
        return []

    def describe(self) -> dict[str, Any]:
        """The defense's identity in cache keys: its name, version and full config, JSON-ready."""
        return {"name": self.name, "version": self.version, "config": config_to_dict(self.config)}

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)
