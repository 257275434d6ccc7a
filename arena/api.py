"""Arena from Python: one cell of the game, or a whole duel, with typed results.

::

    import arena

    cell = arena.evaluate("badnets", "strip", limit=120)
    cell.payoff, cell.metrics, cell.to_dict()      # what `arena evaluate --json` prints

    outcome = arena.duel("badnets", "strip", budget="quick")
    outcome.value, outcome.value_ci, outcome.attacker_mix
    outcome.payoff_matrix()                        # pandas DataFrames
    outcome.trials(side="attacker")
    outcome.rounds()

:func:`evaluate` and :func:`duel` take the settings of ``arena evaluate`` and ``arena duel``,
named after their flags (``--delta-attack`` is ``delta_attack``, ``-A`` is ``attack_params``),
and check them with the same code, so a bad setting raises the ``ValueError`` the command
line reports in one line. The commands call them too: ``arena evaluate`` is :func:`evaluate`,
``arena duel`` is :func:`prepare_duel` and :meth:`DuelPlan.run`, as :func:`duel` is.

Strategy parameters are given as a mapping (``{"poison_rate": 0.05}``; for a pipeline,
``{"strip.overlays": 8}`` or ``{"strip": {"overlays": 8}}``) or as ``KEY=VALUE`` strings, as
on the command line; both go through :func:`arena.core.overrides.apply_overrides`.

Heavy modules (torch, Ray, Optuna, pandas) are imported inside the functions that use them, so
importing this module, as ``arena.evaluate`` does on first use, costs little by itself.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    import pandas as pd

    from arena.cell.result import CellResult, Detection, GateRecord
    from arena.cell.runner import Compute
    from arena.cell.setting import Setting
    from arena.duels.audit import AuditSpec
    from arena.duels.run import DuelSpec, Hooks
    from arena.game.budget import Budget
    from strategies.players import AttackerStrategy, DefenderStrategy

__all__ = [
    "Cell",
    "DuelOutcome",
    "DuelPlan",
    "Params",
    "check_output_dir",
    "duel",
    "evaluate",
    "override_items",
    "players",
    "prepare_duel",
    "resolve_budget",
    "strategy_configs",
]

Params: TypeAlias = Mapping[str, Any] | Sequence[str] | None
"""Strategy parameters: ``{field: value}`` or ``["field=value", ...]`` (``None``: none)."""

BUDGET_FIELDS = ("rounds", "attacker_trials", "defender_trials", "epsilon", "seeds", "ci_seeds",
                 "ci_half_width", "max_ci_seeds", "prune", "reproducible")  # fmt: skip
"""The :class:`~arena.game.budget.Budget` fields that :func:`duel` overrides one by one."""

TRIAL_ATTRS = ("strategy", "ca", "asr", "sda", "sasr", "far", "frr", "flagged", "clean_flagged",
               "payoffs", "trained", "pruned")  # fmt: skip
"""The user attributes of a duel's trials that :meth:`DuelOutcome.trials` shows."""

TRIAL_COLUMNS = ("study", "side", "round", "audit", "number", "state", "value", *TRIAL_ATTRS,
                 "seconds", "params")  # fmt: skip
"""The columns of :meth:`DuelOutcome.trials`."""

SIDES = ("attacker", "defender")


# --- strategies and settings -------------------------------------------------------------


def override_items(params: Params) -> list[str] | None:
    """``params`` as the ``KEY=VALUE`` strings that ``-A``, ``-T`` and ``-D`` collect.

    A mapping's values are written with ``str`` and parsed back by the field's type, so they
    meet exactly the checks a command line's do; a nested mapping names a pipeline's stage
    (``{"strip": {"overlays": 8}}`` is ``strip.overlays=8``). One string is one item."""
    if params is None:
        return None
    if isinstance(params, str):
        return [params]
    if isinstance(params, Mapping):
        items = []
        for key, value in params.items():
            if isinstance(value, Mapping):
                items += [f"{key}.{k}={v}" for k, v in value.items()]
            else:
                items.append(f"{key}={value}")
        return items
    return [str(item) for item in params]


def strategy_configs(
    attacker: str | None,
    defender: str | None,
    *,
    attack_params: Params = None,
    train_params: Params = None,
    defense_params: Params = None,
) -> dict[str, Any]:
    """The configs of an attack (``attack``, with its BadNet's training recipe, ``train``) and
    of a defense (``defense``: one config, or a list of one per stage of a pipeline
    ``a+b``), their defaults with the parameters applied; a side that is ``None`` is left
    out. An unknown name, field or value raises a one-line ``ValueError``."""
    from arena.core.overrides import apply_overrides
    from arena.core.train import TrainConfig
    from strategies import attack_class, defense_class
    from strategies.defenses import parse_defenses

    out: dict[str, Any] = {}
    if attacker is not None:
        attack_cfg = attack_class(attacker).config_cls()
        out["attack"] = apply_overrides(attack_cfg, override_items(attack_params), attacker)
        out["train"] = apply_overrides(TrainConfig(), override_items(train_params), "train")
    if defender is not None:
        names = parse_defenses(defender)
        items = override_items(defense_params) or []
        if len(names) == 1:
            defense_cfg = defense_class(defender).config_cls()
            out["defense"] = apply_overrides(defense_cfg, items, defender)
        else:  # a pipeline: STAGE.FIELD=VALUE
            stray = [i for i in items if i.partition("=")[0].partition(".")[0] not in names]
            if stray:
                raise ValueError(
                    f"defense parameter {stray[0]!r} names no stage of {defender}; in a pipeline "
                    f"write -D STAGE.FIELD=VALUE, e.g. -D {names[-1]}.FIELD=VALUE"
                )
            out["defense"] = [
                apply_overrides(
                    defense_class(n).config_cls(),
                    [i.partition(".")[2] for i in items if i.partition(".")[0] == n],
                    n,
                )
                for n in names
            ]
    return out


def players(
    attacker: str,
    defender: str,
    *,
    attack_params: Params = None,
    train_params: Params = None,
    defense_params: Params = None,
) -> tuple[AttackerStrategy, DefenderStrategy]:
    """The attacker's and the defender's strategies of one cell: the attack with its recipe,
    and the defense (or pipeline) stage by stage, each with its parameters applied."""
    from strategies.defenses import parse_defenses
    from strategies.players import AttackerStrategy, DefenderStrategy

    configs = strategy_configs(
        attacker,
        defender,
        attack_params=attack_params,
        train_params=train_params,
        defense_params=defense_params,
    )
    stages = configs["defense"] if isinstance(configs["defense"], list) else [configs["defense"]]
    return (
        AttackerStrategy(attacker, configs["attack"], configs["train"]),
        DefenderStrategy(tuple(zip(parse_defenses(defender), stages, strict=True))),
    )


def _setting(
    *,
    dataset: str,
    data_path: str | None,
    image_size: int | None,
    limit: int | None,
    model: str,
    cache: str,
    delta_attack: float,
    delta_defense: float,
    frr_budget: float,
) -> Setting:
    """The :class:`~arena.cell.setting.Setting` of the data, model, cache and gate settings."""
    from arena.cell.setting import Gates, Setting
    from arena.data import DataRef

    data = DataRef(name=dataset, path=data_path, image_size=image_size, limit=limit)
    return Setting(
        data=data,
        model=model,
        gates=Gates(delta_attack, delta_defense, frr_budget),
        cache_url=cache,
    )


def _check_seed(seed: int) -> None:
    from arena.core.config import SEED, check_option

    check_option("--seed", seed, SEED, integer=True)


def check_output_dir(path: str, option: str = "--out") -> None:
    """Raise a one-line ``ValueError`` naming ``option`` unless ``path`` is a folder that
    exists or can be made, and can be written in: checked before any work."""
    import os

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder; give {option} a folder")
    existing = folder
    while not existing.exists():  # the nearest folder that exists must let us make the rest
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{option} {path} cannot be written ({existing} is not a writable folder); give "
            f"{option} a folder you can write to"
        )


# --- one cell ----------------------------------------------------------------------------


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
    _check_seed(seed)
    attack, defense = players(
        attacker,
        defender,
        attack_params=attack_params,
        train_params=train_params,
        defense_params=defense_params,
    )
    artifacts = ArtifactCache(cache)
    artifacts.check_writable()
    setting = _setting(
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


# --- a duel ------------------------------------------------------------------------------


def resolve_budget(
    budget: str | Budget = "default",
    *,
    rounds: int | None = None,
    attacker_trials: int | None = None,
    defender_trials: int | None = None,
    epsilon: float | None = None,
    seeds: int | None = None,
    ci_seeds: int | None = None,
    ci_half_width: float | None = None,
    max_ci_seeds: int | None = None,
    prune: bool | None = None,
    reproducible: bool | None = None,
) -> Budget:
    """A preset (``"quick"``, ``"default"``, ``"thorough"``) or a
    :class:`~arena.game.budget.Budget`, with each field that is not ``None`` overridden (what
    ``--budget`` and the flags after it give). A bad value raises a one-line ``ValueError``
    naming its flag."""
    from arena.game.budget import BUDGETS, Budget

    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}; the presets: {', '.join(BUDGETS)}")
        budget = BUDGETS[budget]
    given = {
        "rounds": rounds,
        "attacker_trials": attacker_trials,
        "defender_trials": defender_trials,
        "epsilon": epsilon,
        "seeds": seeds,
        "ci_seeds": ci_seeds,
        "ci_half_width": ci_half_width,
        "max_ci_seeds": max_ci_seeds,
        "prune": prune,
        "reproducible": reproducible,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    return Budget(**{**dataclasses.asdict(budget), **overrides})


@dataclass(frozen=True)
class DuelPlan:
    """A duel built from its settings and checked, ready to run (:func:`prepare_duel`).

    ``storage`` is the Optuna storage URL as given, ``out`` the output folder, ``audit`` the
    audit to run after the duel, if any."""

    spec: DuelSpec
    name: str
    storage: str
    out: str
    resume: bool
    compute: Compute
    audit: AuditSpec | None

    def run(self, hooks: Hooks | None = None) -> dict[str, Any]:
        """Play the duel and write ``out/duel.json``; returns its record
        (:func:`arena.duels.run.run_duel`)."""
        from arena.duels.run import run_duel

        return run_duel(
            self.spec,
            name=self.name,
            storage_url=self.storage,
            out_dir=self.out,
            resume=self.resume,
            compute=self.compute,
            hooks=hooks,
        )

    def run_audit(self, result: dict[str, Any], hooks: Hooks | None = None) -> None:
        """Audit the duel of ``result`` (the record :meth:`run` returned), which gains its
        ``audit`` and is written again to ``out/duel.json`` (:func:`arena.duels.audit.run_audit`);
        nothing without an audit."""
        if self.audit is None:
            return
        from arena.duels.audit import run_audit

        run_audit(
            result,
            self.audit,
            storage_url=self.storage,
            out_dir=self.out,
            resume=self.resume,
            compute=self.compute,
            hooks=hooks,
        )


def prepare_duel(
    attacker: str,
    defender: str,
    *,
    setting: Setting,
    budget: Budget,
    seed: int = 0,
    storage: str | None = None,
    out: str | None = None,
    name: str | None = None,
    resume: bool = False,
    address: str | None = None,
    device: str = "auto",
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    max_failures: int = 2,
    audit: int | AuditSpec | None = None,
) -> DuelPlan:
    """The duel of these settings, checked before any work, each failure one line: the
    attacker's and defender's names, where it runs, the device, the output folder, and the
    duel's preflight (storage and cache writable, data big enough, training within memory;
    :func:`arena.duels.run.preflight`). A cluster, if any, is joined and checked when the duel
    runs, still before any work.

    ``storage`` defaults to ``sqlite:///runs/arena.db``, ``out`` to ``runs/duels/NAME``, and
    ``name`` to one made of the attacker, the defender and a hash of every setting (so an
    identical duel replays from the storage and the cache). ``audit``: trials per side of an
    audit after the duel (``arena duel --audit``), or an :class:`~arena.duels.audit.AuditSpec`."""
    from arena.cell.runner import Compute
    from arena.duels.audit import AuditSpec
    from arena.duels.run import DuelSpec, absolute_storage, preflight
    from strategies.players import parse_attackers, parse_defenders
    from studies.storage import DEFAULT_STORAGE

    _check_seed(seed)
    spec = DuelSpec(attacker, defender, setting, budget, seed=seed)
    name = name or spec.name
    storage = storage or DEFAULT_STORAGE
    out = out or f"runs/duels/{name}"
    compute = Compute(
        address=address,
        device=device,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        max_failures=max_failures,
    )
    if isinstance(audit, int):
        audit = AuditSpec(trials=audit)
    parse_attackers(attacker)
    parse_defenders(defender)
    if not compute.target:
        from arena.core.device import resolve_device

        resolve_device(device)
    check_output_dir(out)
    preflight(spec, absolute_storage(storage))  # run_duel checks it again, for other callers
    return DuelPlan(spec, name, storage, out, resume, compute, audit)


@dataclass(frozen=True)
class DuelOutcome:
    """A finished duel: its ``duel.json`` record, with the storage that holds its studies.

    The figures are attributes (``value``, ``value_ci``, ``exploitability``, both mixes); the
    payoff matrix, every study's trials and the rounds are pandas DataFrames
    (:meth:`payoff_matrix`, :meth:`trials`, :meth:`rounds`); :meth:`to_dict` is
    ``duel.json``'s content. ``out`` is the folder the duel wrote (``None`` if unknown)."""

    record: dict[str, Any] = field(repr=False)
    storage: str
    out: str | None = None

    @classmethod
    def of(cls, result: dict[str, Any], storage: str, out: str | None = None) -> DuelOutcome:
        """The outcome of ``result``, a duel's record as :func:`arena.duels.run.run_duel`
        returns it, read as ``duel.json`` holds it (JSON types; ``NaN`` is ``None``), whose
        studies are in ``storage``."""
        from arena.core.jsonio import dumps
        from arena.duels.run import absolute_storage

        record = json.loads(dumps(result, default=float))
        return cls(record, absolute_storage(storage), out)

    @classmethod
    def load(cls, where: str | Path, storage: str | None = None) -> DuelOutcome:
        """The outcome of a finished duel from its ``duel.json`` (``where``: the file or its
        folder). ``storage`` defaults to the one ``duel.json`` names, whose password, if it had
        one, is hidden there: give the URL again for such a storage."""
        path = Path(where)
        if path.is_dir():
            path = path / "duel.json"
        record = json.loads(path.read_text())
        return cls(record, storage or record["duel"]["storage"], str(path.parent))

    @property
    def name(self) -> str:
        """The duel's name, which prefixes its studies' names."""
        return str(self.record["duel"]["name"])

    @property
    def value(self) -> float:
        """The restricted game's value at the last round: post-defense attack success at the
        equilibrium."""
        return float(self.record["value"])

    @property
    def value_ci(self) -> tuple[float | None, float | None]:
        """The value's 95% interval ``(low, high)``, re-measured on fresh seeds (``None``
        where too few seeds were played; the full record is ``to_dict()["value_ci"]``)."""
        ci = self.record["value_ci"]
        return ci["low"], ci["high"]

    @property
    def lower_bound(self) -> float:
        """The defender's best response's payoff: the value is at least this."""
        return float(self.record["lower_bound"])

    @property
    def upper_bound(self) -> float:
        """The attacker's best response's payoff: the value is at most this."""
        return float(self.record["upper_bound"])

    @property
    def exploitability(self) -> float:
        """The gap between the bounds at the last round."""
        return float(self.record["exploitability"])

    @property
    def stopped(self) -> str:
        """Why the duel stopped: ``converged``, ``within noise``, ``budget``, ..."""
        return str(self.record["stopped"])

    @property
    def attacker_mix(self) -> dict[str, float]:
        """The attacker's equilibrium mix, ``{strategy label: weight}``, heaviest first (every
        strategy's parameters: ``to_dict()["attacker_mix"]``)."""
        return {e["strategy"]: float(e["weight"]) for e in self.record["attacker_mix"]}

    @property
    def defender_mix(self) -> dict[str, float]:
        """The defender's equilibrium mix, ``{strategy label: weight}``, heaviest first."""
        return {e["strategy"]: float(e["weight"]) for e in self.record["defender_mix"]}

    def to_dict(self) -> dict[str, Any]:
        """``duel.json``'s content (a copy)."""
        return copy.deepcopy(self.record)

    def payoff_matrix(self) -> pd.DataFrame:
        """The restricted game's payoffs: a row per attacker strategy and a column per
        defender strategy, by label, each cell its mean payoff over the duel's seeds."""
        import pandas as pd

        m = self.record["payoff_matrix"]
        return pd.DataFrame(
            m["values"],
            index=pd.Index(m["attackers"], name="attacker"),
            columns=pd.Index(m["defenders"], name="defender"),
        )

    def rounds(self) -> pd.DataFrame:
        """A row per double-oracle round: the value, both bounds and the gap, both mixes, each
        oracle's best response and study, and whether it was added."""
        import pandas as pd

        return pd.DataFrame.from_records(self.record["rounds"])

    def trials(self, side: Literal["attacker", "defender"] | None = None) -> pd.DataFrame:
        """Every trial of the duel's studies (and of its audit's), read from the Optuna
        storage, in order of round, side and number; ``side`` keeps one side's.

        Columns (:data:`TRIAL_COLUMNS`): the ``study``'s name, its ``side``, ``round`` (``<NA>``
        for the audit's studies, which have ``audit`` true), the trial's ``number``,
        ``state`` (``COMPLETE``, ``PRUNED``, ``FAIL``, ...) and ``value``, the post-defense
        attack success it scored (``NaN`` unless complete: Optuna stores a pruned trial's last
        intermediate value, its BadNet's clean accuracy when stopped); the ``strategy``'s
        label, its metrics (``ca`` to ``frr``), the detector's verdicts (``flagged``,
        ``clean_flagged``), the ``payoffs`` against each opponent, the models it ``trained``
        and why it was ``pruned``; its wall ``seconds``; and its ``params``, a dict of what the
        sampler chose."""
        import optuna
        import pandas as pd

        from studies.storage import open_storage

        if side is not None and side not in SIDES:
            raise ValueError(f"side must be 'attacker', 'defender' or None, not {side!r}")
        storage = open_storage(self.storage, create=False)
        rows = []
        for study in storage.get_all_studies():
            where = _study_place(self.name, study.study_name)
            if where is None or (side is not None and where[1] != side):
                continue
            loaded = optuna.load_study(study_name=study.study_name, storage=storage)
            for t in loaded.get_trials(deepcopy=False):
                attrs = t.user_attrs
                rows.append(
                    {
                        "study": study.study_name,
                        "side": where[1],
                        "round": where[0],
                        "audit": where[0] is None,
                        "number": t.number,
                        "state": t.state.name,
                        "value": t.value if t.state.name == "COMPLETE" else None,
                        **{k: attrs.get(k) for k in TRIAL_ATTRS},
                        "seconds": None if t.duration is None else t.duration.total_seconds(),
                        "params": dict(t.params),
                    }
                )
        rows.sort(key=lambda r: (r["audit"], r["round"] or 0, r["side"], r["number"]))
        frame = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
        frame["round"] = frame["round"].astype("Int64")
        frame["audit"] = frame["audit"].astype(bool)
        return frame

    def __repr__(self) -> str:
        from studies.storage import redact

        low, high = self.value_ci
        ci = "" if low is None or high is None else f" [{low:.3f}, {high:.3f}]"
        return (
            f"DuelOutcome({self.name}: value {self.value:.3f}{ci}, exploitability "
            f"{self.exploitability:.3f}, storage {redact(self.storage)})"
        )


def _study_place(duel: str, study: str) -> tuple[int | None, str] | None:
    """``(round, side)`` of one of ``duel``'s studies (``NAME/rNN/SIDE``; round ``None`` for
    its audit's, ``NAME/audit/SIDE``), ``None`` for any other study (a lease, another duel)."""
    if not study.startswith(duel + "/"):
        return None
    parts = study[len(duel) + 1 :].split("/")
    if len(parts) != 2 or parts[1] not in SIDES:
        return None
    stage, side = parts
    if stage == "audit":
        return None, side
    if stage.startswith("r") and stage[1:].isdigit():
        return int(stage[1:]), side
    return None


def _progress_hooks(audit: bool = False) -> Hooks:
    """A line on stderr per finished trial, per round and per phase of the duel."""
    from arena.duels.run import Hooks

    def say(text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def on_trial(e: Any) -> None:
        payoff = f"pruned: {e.pruned}" if e.pruned else f"payoff {e.objective:.3f}"
        where = "audit" if audit else f"r{e.round}"
        say(f"  {where} {e.side:<8} {e.strategy:<22} {payoff}  {e.wall_seconds:.1f}s")

    def on_round(r: Any) -> None:
        say(
            f"round {r.round}: value {r.value:.3f}, bounds [{r.lower_bound:.3f}, "
            f"{r.upper_bound:.3f}], gap {r.gap:.3f}"
        )

    return Hooks(on_trial=on_trial, on_round=on_round, on_phase=say)


def duel(
    attacker: str,
    defender: str,
    *,
    budget: str | Budget = "default",
    rounds: int | None = None,
    attacker_trials: int | None = None,
    defender_trials: int | None = None,
    epsilon: float | None = None,
    seeds: int | None = None,
    ci_seeds: int | None = None,
    ci_half_width: float | None = None,
    max_ci_seeds: int | None = None,
    prune: bool | None = None,
    reproducible: bool | None = None,
    dataset: str = "digits",
    data_path: str | None = None,
    image_size: int | None = None,
    limit: int | None = None,
    model: str = "small-cnn",
    seed: int = 0,
    cache: str = "runs/cache",
    delta_attack: float = 0.03,
    delta_defense: float = 0.05,
    frr_budget: float = 0.05,
    storage: str | None = None,
    out: str | None = None,
    name: str | None = None,
    resume: bool = False,
    address: str | None = None,
    device: str = "auto",
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    max_failures: int = 2,
    audit: int | AuditSpec | None = None,
    progress: bool | Hooks = False,
    report: bool = True,
    plugins: Sequence[str] = (),
) -> DuelOutcome:
    """Solve the attacker-defender game by double oracle, as ``arena duel`` does, and return
    its outcome.

    ``attacker``: an attack family, comma-separated families or ``"all"``; ``defender``: a
    defense, a pipeline ``a+b``, comma-separated choices or ``"all"``. ``budget`` is a preset
    (``"quick"``, ``"default"``, ``"thorough"``) or a :class:`~arena.game.budget.Budget`;
    ``rounds`` to ``prune`` override its fields (:func:`resolve_budget`). The data, model,
    cache and gate settings are :func:`evaluate`'s; ``storage``, ``out``, ``name``, ``resume``,
    ``audit`` and where it runs (``address``, ``device``, ``cpus_per_trial``,
    ``gpus_per_trial``, ``max_failures``) are :func:`prepare_duel`'s, the flags of the same
    names; ``plugins`` is :func:`evaluate`'s. Everything is checked before any work (a
    one-line ``ValueError``).

    It writes ``duel.json`` (and, with ``report``, ``report.md`` and the two plots) in
    ``out``; its studies are in ``storage``. ``progress``: ``True`` writes a line per trial
    and round on stderr; a :class:`~arena.duels.run.Hooks` is called instead. A duel that
    another driver holds, or whose studies stopped unfinished without ``resume``, raises a
    ``RuntimeError`` that says what to do; after an interruption (``KeyboardInterrupt``) the
    finished trials are kept, and the same call with ``resume=True`` continues."""
    from arena.plugins import load_plugins
    from arena.report.duel import write_report

    load_plugins(plugins)
    chosen = resolve_budget(
        budget,
        rounds=rounds,
        attacker_trials=attacker_trials,
        defender_trials=defender_trials,
        epsilon=epsilon,
        seeds=seeds,
        ci_seeds=ci_seeds,
        ci_half_width=ci_half_width,
        max_ci_seeds=max_ci_seeds,
        prune=prune,
        reproducible=reproducible,
    )
    setting = _setting(
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
    plan = prepare_duel(
        attacker,
        defender,
        setting=setting,
        budget=chosen,
        seed=seed,
        storage=storage,
        out=out,
        name=name,
        resume=resume,
        address=address,
        device=device,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
        max_failures=max_failures,
        audit=audit,
    )
    hooks: Hooks | None = None
    audit_hooks: Hooks | None = None
    if not isinstance(progress, bool):
        hooks = audit_hooks = progress
    elif progress:
        hooks, audit_hooks = _progress_hooks(), _progress_hooks(audit=True)
    result = plan.run(hooks)
    plan.run_audit(result, audit_hooks)
    if report:
        write_report(result, plan.out)
    return DuelOutcome.of(result, plan.storage, plan.out)
