"""What every cell of a duel (or a single ``arena evaluate``) shares."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

from arena.core.cache import DEFAULT_CACHE
from arena.core.config import UNIT, check_option
from arena.core.train import VERSION as TRAINER_VERSION
from arena.data import VERSION as DATA_VERSION
from arena.data import DataRef, Splits
from arena.models import DEFAULT_MODEL
from arena.models import VERSION as MODELS_VERSION


def code_versions() -> dict[str, int]:
    """The versions of the code every model depends on: the data (loaders and generators), the
    architectures and the training loop. Each strategy has its own (its class's ``version``)
    and the payoff rules theirs (:data:`arena.cell.rules.VERSION`); all of them enter the cache
    keys and duel names they affect, so an artifact made by older code is never replayed."""
    return {"data": DATA_VERSION, "models": MODELS_VERSION, "trainer": TRAINER_VERSION}


@dataclass(frozen=True)
class Gates:
    """The payoff rules' thresholds (DESIGN.md, "The game"): the user rejects a BadNet whose
    clean accuracy is more than ``delta_attack`` below the clean model's; a defense that costs
    more than ``delta_defense`` of clean accuracy or rejects more than ``frr_budget`` of clean
    inputs scores as if it had not run."""

    delta_attack: float = 0.03
    delta_defense: float = 0.05
    frr_budget: float = 0.05

    def __post_init__(self) -> None:
        """Each gate is a share of accuracy or of inputs: a finite number in [0, 1]."""
        check_option("--delta-attack", self.delta_attack, UNIT)
        check_option("--delta-defense", self.delta_defense, UNIT)
        check_option("--frr-budget", self.frr_budget, UNIT)


@dataclass(frozen=True)
class Setting:
    """The data, the architecture, the gates, the artifact cache and the device of a cell.

    ``device`` (``cpu`` or ``cuda``) is where workers train and infer; like the cache, it is not
    part of what a cell is (:meth:`describe`, which enters every cell's content key)."""

    data: DataRef = DataRef()
    model: str = DEFAULT_MODEL
    gates: Gates = Gates()
    cache_url: str = DEFAULT_CACHE
    device: str = "cpu"

    def describe(self) -> dict[str, Any]:
        return {
            "data": asdict(self.data),
            "model": self.model,
            "gates": asdict(self.gates),
            "versions": code_versions(),
        }

    def splits(self) -> Splits:
        """The dataset, loaded once per process (:func:`load_data`)."""
        return load_data(self.data)


@functools.lru_cache(maxsize=4)
def load_data(ref: DataRef) -> Splits:
    """The dataset, loaded once per process (Ray reuses its worker processes across trials)."""
    return ref.load()
