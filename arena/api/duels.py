"""A duel from Python: :func:`duel` (what ``arena duel`` runs, through :func:`prepare_duel` and
:class:`DuelPlan`) and its typed result, :class:`DuelOutcome`, with pandas accessors."""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

    from arena.cell.runner import Compute
    from arena.cell.setting import Setting
    from arena.duels.audit import AuditSpec
    from arena.duels.run import DuelSpec, Hooks
    from arena.game.budget import Budget


from arena.api.settings import cell_setting, check_output_dir, check_seed

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

    check_seed(seed)
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
