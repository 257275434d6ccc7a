"""The typed result of a scored cell, and its JSON record.

:meth:`CellResult.to_json` gives exactly the keys of ``arena evaluate --json`` (also what a
cell's cache entry holds); :meth:`CellResult.from_json` reads such a record back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from arena.cell.rules import METRICS, Metrics, Ruling
from arena.cell.setting import Gates

PER_TRIGGER = ("triggers", "asr_per_trigger", "sasr_per_trigger", "far_per_trigger")
CELL_KEYS = (
    *METRICS, "detection", "payoff", "gates", "seconds", "cpu_seconds", *PER_TRIGGER, "artifacts"
)  # fmt: skip
"""The keys of a cell's JSON record (``arena evaluate --json``), a public interface."""


@dataclass
class Detection:
    """What a model-level detector said of the BadNet and of the clean reference model
    (``None``: the defense does not flag models, or it did not run). ``target_named``: whether
    the flag of the BadNet named one of the attack's targets (``True``; Le Roux et al.'s true
    positive) or only other labels (``False``: the model is rejected all the same, for the
    wrong reason); ``None`` when the BadNet is not flagged or the defense names no label."""

    badnet: bool | None = None
    clean: bool | None = None
    outcome: str | None = None  # TP or FN
    clean_outcome: str | None = None  # FP or TN
    details: dict[str, Any] = field(default_factory=dict)
    target_named: bool | None = None

    @classmethod
    def of(
        cls,
        badnet: bool | None,
        clean: bool | None,
        details: dict[str, Any] | None = None,
        *,
        named: list[int] | None = None,
        targets: set[int] | None = None,
    ) -> Detection:
        """The record of a verdict; ``named``: the labels the defense suspects, ``targets``:
        the attack's target labels."""
        right = None
        if badnet and named is not None and targets is not None:
            right = bool(set(named) & targets)
        return cls(
            badnet=badnet,
            clean=clean,
            outcome=None if badnet is None else ("TP" if badnet else "FN"),
            clean_outcome=None if clean is None else ("FP" if clean else "TN"),
            details=details or {},
            target_named=right,
        )


@dataclass
class GateRecord:
    """Which gate decided the payoff and why, with the thresholds and what the cell reused."""

    decided_by: str | None
    reasons: list[str]
    clean_ca: float
    badnet_status: str
    cached: dict[str, bool]
    delta_attack: float
    delta_defense: float
    frr_budget: float

    @classmethod
    def of(
        cls,
        ruling: Ruling,
        *,
        clean_ca: float,
        badnet_status: str,
        cached: dict[str, bool],
        gates: Gates,
    ) -> GateRecord:
        return cls(
            ruling.decided_by,
            list(ruling.reasons),
            clean_ca,
            badnet_status,
            cached,
            **asdict(gates),
        )


@dataclass
class CellResult:
    """A scored cell. The metrics other than CA and ASR are ``None`` when the user's gate
    rejected the BadNet before any defense ran. ``asr``, ``sasr``, ``far`` and ``payoff`` are
    those of the trigger the attacker deploys (the best of several: :mod:`arena.cell.rules`);
    ``triggers``, ``asr_per_trigger``, ``sasr_per_trigger`` and ``far_per_trigger`` list every
    trigger's (one entry
    for an attack with one trigger; ``None`` where a trigger could not be measured).
    ``seconds`` holds each phase's wall seconds and ``cpu_seconds`` the CPU seconds the process
    spent in it (every thread's; cells from before it was kept have none). ``artifacts`` maps
    each kind of cached artifact the cell read or wrote (``clean``, ``badnet``, ``fit``,
    ``verdict``, trained parts) to their keys, so that ``arena cache prune`` keeps what a stored
    duel's cells need (``None`` for a cell from before it was kept).
    ``trained`` (models this call trained) and ``cached`` (the whole cell came from the cache)
    describe the call, not the cell, and are not in :meth:`to_json`."""

    ca: float
    asr: float
    sda: float | None
    sasr: float | None
    far: float | None
    frr: float | None
    detection: Detection
    payoff: float
    gates: GateRecord
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    triggers: list[str] = field(default_factory=list)
    asr_per_trigger: list[float | None] = field(default_factory=list)
    sasr_per_trigger: list[float | None] = field(default_factory=list)
    far_per_trigger: list[float | None] = field(default_factory=list)
    artifacts: dict[str, list[str]] | None = None
    trained: int = 0
    cached: bool = False

    @classmethod
    def of(
        cls,
        metrics: Metrics,
        ruling: Ruling,
        *,
        detection: Detection,
        gates: GateRecord,
        seconds: dict[str, float] | None = None,
    ) -> CellResult:
        return cls(
            **asdict(metrics),
            detection=detection,
            payoff=ruling.payoff,
            gates=gates,
            seconds=seconds or {},
        )

    def metric(self, name: str) -> float | None:
        """One of :data:`arena.cell.rules.METRICS` as a float, ``None`` where it was not
        measured."""
        value = getattr(self, name)
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        return {
            "ca": self.ca,
            "asr": self.asr,
            "sda": self.sda,
            "sasr": self.sasr,
            "far": self.far,
            "frr": self.frr,
            "detection": asdict(self.detection),
            "payoff": self.payoff,
            "gates": asdict(self.gates),
            "seconds": dict(self.seconds),
            "cpu_seconds": dict(self.cpu_seconds),
            "triggers": list(self.triggers),
            "asr_per_trigger": list(self.asr_per_trigger),
            "sasr_per_trigger": list(self.sasr_per_trigger),
            "far_per_trigger": list(self.far_per_trigger),
            "artifacts": None if self.artifacts is None else dict(self.artifacts),
        }

    @classmethod
    def from_json(cls, record: dict[str, Any], *, cached: bool = False) -> CellResult:
        return cls(
            **{k: record[k] for k in ("ca", "asr", "sda", "sasr", "far", "frr", "payoff")},
            detection=Detection(**record["detection"]),
            gates=GateRecord(**record["gates"]),
            seconds=dict(record.get("seconds", {})),
            cpu_seconds=dict(record.get("cpu_seconds", {})),
            triggers=list(record.get("triggers", [])),
            asr_per_trigger=list(record.get("asr_per_trigger", [])),
            sasr_per_trigger=list(record.get("sasr_per_trigger", [])),
            far_per_trigger=list(record.get("far_per_trigger", [])),
            artifacts=record.get("artifacts"),
            cached=cached,
        )

    def gate_margins(self) -> tuple[float, float]:
        """How far the cell is inside (< 0) or past (> 0) each gate: the user's (the BadNet's
        clean accuracy drop over ``delta_attack``) and the defender's (the largest of its
        accuracy cost over ``delta_defense``, its clean rejections over ``frr_budget``, and +1
        when it flags the clean model, -1 when it does not)."""
        g = self.gates
        user = g.clean_ca - self.ca - g.delta_attack
        if self.sda is None or self.frr is None:  # the user's gate fired; no defense ran
            return user, -1.0
        flag = bool(self.detection.clean)
        defense = max(self.ca - self.sda - g.delta_defense, self.frr - g.frr_budget)
        return user, max(defense, 1.0 if flag else -1.0)
