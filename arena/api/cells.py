"""One cell of the game from Python: :func:`evaluate` (what ``arena evaluate`` runs) and its
typed result, :class:`Cell`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arena.cell.result import CellResult, Detection, GateRecord
    from arena.cell.setting import Setting
    from strategies.players import AttackerStrategy, DefenderStrategy


from arena.api.settings import Params, cell_setting, check_seed, players


@dataclass(frozen=True)
class Cell:
    """One scored cell: an attack against a defense on one seed.

    The metrics, the payoff and what decided it are attributes (``cell.payoff``, ``cell.asr``,
    ``cell.gates.decided_by``); ``result`` is the full :class:`~arena.cell.result.CellResult`,
    ``attack`` and ``defense`` the strategies that were played (every parameter), ``setting``
    the data, model, gates and cache. :meth:`to_dict` is ``arena evaluate --json``'s record."""

    attacker: str
    defender: str
    seed: int
    result: CellResult = field(repr=False)
    setting: Setting = field(repr=False)
    attack: AttackerStrategy = field(repr=False)
    defense: DefenderStrategy = field(repr=False)

    @property
    def payoff(self) -> float:
        """Post-defense attack success, by the payoff rules (what the attacker wins)."""
        return self.result.payoff

    @property
    def ca(self) -> float:
        """The BadNet's clean accuracy."""
        return self.result.ca

    @property
    def asr(self) -> float:
        """Attack success with no defense."""
        return self.result.asr

    @property
    def sda(self) -> float | None:
        """Clean accuracy with the defense (``None``: the defense did not run)."""
        return self.result.sda

    @property
    def sasr(self) -> float | None:
        """Attack success that passes the defense."""
        return self.result.sasr

    @property
    def far(self) -> float | None:
        """Share of triggered inputs the defense accepts."""
        return self.result.far

    @property
    def frr(self) -> float | None:
        """Share of clean inputs the defense rejects."""
        return self.result.frr

    @property
    def metrics(self) -> dict[str, float | None]:
        """CA, ASR, SDA, SASR, FAR and FRR by their lower-case names."""
        from arena.cell.rules import METRICS

        return {name: self.result.metric(name) for name in METRICS}

    @property
    def detection(self) -> Detection:
        """What a model-level detector said of the BadNet and of the clean model."""
        return self.result.detection

    @property
    def gates(self) -> GateRecord:
        """Which gate decided the payoff and why, with the thresholds."""
        return self.result.gates

    @property
    def decided_by(self) -> str | None:
        """The gate that decided the payoff (``"user"``, ``"defender"``, ...), if one did."""
        return self.result.gates.decided_by

    @property
    def triggers(self) -> list[str]:
        """The attack's triggers; the cell is scored on the best one."""
        return list(self.result.triggers)

    @property
    def seconds(self) -> dict[str, float]:
        """Wall seconds of each phase (data, clean model, BadNet, defense, metrics, total)."""
        return dict(self.result.seconds)

    @property
    def trained(self) -> int:
        """Models this call trained (0 when both came from the cache)."""
        return self.result.trained

    def to_dict(self) -> dict[str, Any]:
        """Exactly the JSON object ``arena evaluate --json`` prints for this cell: the cell's
        record with its ``schema_version`` and ``provenance``."""
        from arena.cell.provenance import stamped
        from arena.core.jsonio import dumps

        record = stamped(self.result.to_json(), data=self.setting.data, seeds=[self.seed])
        value: dict[str, Any] = json.loads(dumps(record, default=str))
        return value

    def __repr__(self) -> str:
        r = self.result
        rates = ", ".join(
            f"{k} {v:.3f}" for k, v in (("ca", r.ca), ("asr", r.asr), ("sasr", r.sasr))
            if v is not None
        )  # fmt: skip
        gate = f", decided by the {r.gates.decided_by} gate" if r.gates.decided_by else ""
        return (
            f"Cell({self.attacker} vs {self.defender}, seed {self.seed}: payoff "
            f"{r.payoff:.3f}, {rates}{gate})"
        )


def evaluate(
    attacker: str,
    defender: str = "none",
    *,
    dataset: str = "digits",
    data_path: str | None = None,
    image_size: int | None = None,
    limit: int | None = None,
    model: str = "small-cnn",
    seed: int = 0,
    cache: str = "runs/cache",
    attack_params: Params = None,
    train_params: Params = None,
    defense_params: Params = None,
    delta_attack: float = 0.03,
    delta_defense: float = 0.05,
    frr_budget: float = 0.05,
    plugins: Sequence[str] = (),
) -> Cell:
    """Score ``attacker`` against ``defender`` (one cell of the game), as ``arena evaluate``
    does: the clean model and the BadNet are read from the artifact cache at ``cache`` or
    trained and cached; the defense runs even on a BadNet the user's gate rejects; the cell
    itself is not cached.

    ``defender`` is one defense or a pipeline such as ``"strip+bdmae"``; ``attack_params``,
    ``train_params`` and ``defense_params`` are ``-A``, ``-T`` and ``-D`` (:data:`Params`).
    The data, model and gate settings are those of the flags of the same names; ``plugins``
    is ``--plugin`` (modules and ``.py`` files; the installed plugins load by themselves:
    docs/extending.md). Every name, parameter and setting is checked before any work; a bad
    one raises a one-line ``ValueError`` (an unknown attack's lists the known ones)."""
    from arena.cell.play import evaluate as score
    from arena.core.cache import ArtifactCache
    from arena.plugins import load_plugins

    load_plugins(plugins)
    check_seed(seed)
    attack, defense = players(
        attacker,
        defender,
        attack_params=attack_params,
        train_params=train_params,
        defense_params=defense_params,
    )
    artifacts = ArtifactCache(cache)
    artifacts.check_writable()
    setting = cell_setting(
        dataset=dataset,
        data_path=data_path,
        image_size=image_size,
        limit=limit,
        model=model,
        cache=cache,
        delta_attack=delta_attack,
        delta_defense=delta_defense,
        frr_budget=frr_budget,
    )
    result = score(attack, defense, setting, seed=seed, cache=artifacts)
    return Cell(attacker, defender, seed, result, setting, attack, defense)
