"""``arena audit``: independent best responses against a finished duel's final mixes.

The game-level method and its verdict are in :mod:`arena.game.audit`; this module plays it
with Arena's studies. Each side's search is a :class:`~studies.oracle.TuneOracle` like the
duel's, but with another Optuna sampler (scrambled Sobol QMC by default, or uniform random),
no warm start from the duel's strategies, its own trial budget (by default three times the
duel's per-round trials), and seeds the duel never played; its studies are
``NAME/audit/attacker`` and ``NAME/audit/defender`` in the duel's storage, so the dashboard
shows them beside the duel's and a run cut short continues with ``resume``; an audit asked
for more trials than an earlier one ran continues that search. Half of the
attacker's trials keep the training recipe of a strategy the attacker plays (the gate rejects
most random recipes) and search the trigger and the poisoning; the other half search
everything. Each side's best find is then re-measured against the opponent's mix on
confirmation seeds that neither the duel nor the search played.

Seeds: the duel plays ``seed + i``, its value's interval ``seed + 1000 + i``; the audit
searches on ``seed + 2000 + i`` and confirms on ``seed + 3000 + i``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from arena.cell.play import Tally
from arena.cell.provenance import stamped
from arena.cell.runner import Compute, on_local_ray, play_rows, resolve_compute
from arena.cell.setting import Gates, Setting
from arena.core.jsonio import dumps
from arena.data import DataRef
from arena.duels.run import DuelSpec, Hooks, absolute_storage, absolute_url, cell_keys, preflight
from arena.game.audit import Audit, AuditedResponse, audit
from arena.game.budget import Budget
from arena.game.double_oracle import Response
from strategies.players import AttackerStrategy, DefenderStrategy, parse_attackers, parse_defenders
from studies.lease import hold as hold_lease
from studies.oracle import SAMPLERS, TuneOracle, best_trial
from studies.spaces import AttackerSpace, DefenderSpace
from studies.storage import open_storage

SEARCH_SEED_OFFSET = 2000
CONFIRM_SEED_OFFSET = 3000
TRIALS_FACTOR = 3  # the default audit budget: this many times the duel's trials per round
MIN_CONFIRM_SEEDS = 3  # the t-interval of 2 seeds is 12.7 standard errors wide


class AuditError(ValueError):
    """An audit that cannot run: no finished duel where it was asked, or one made by other
    code."""


@dataclass(frozen=True)
class AuditSpec:
    """How hard the audit searches: ``trials`` per side (``None``: :data:`TRIALS_FACTOR`
    times the duel's per-round trials of that side), with ``sampler`` (:data:`SAMPLERS`, not
    TPE: the duel's own), confirming each best find on ``confirm_seeds`` seeds (``None``: the
    duel's interval seeds, at least :data:`MIN_CONFIRM_SEEDS`)."""

    trials: int | None = None
    sampler: str = "qmc"
    confirm_seeds: int | None = None

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS or self.sampler == "tpe":
            raise AuditError(
                f"the audit's sampler must differ from the duel's TPE: give --sampler "
                f"{' or '.join(s for s in SAMPLERS if s != 'tpe')}"
            )
        if self.trials is not None and self.trials < 1:
            raise AuditError(f"--audit/--trials must be at least 1, not {self.trials}")
        if self.confirm_seeds is not None and self.confirm_seeds < 2:
            raise AuditError("--confirm-seeds must be at least 2 (one seed measures no noise)")

    def side_trials(self, budget: Budget) -> dict[str, int]:
        if self.trials is not None:
            return {"attacker": self.trials, "defender": self.trials}
        return {
            "attacker": TRIALS_FACTOR * budget.attacker_trials,
            "defender": TRIALS_FACTOR * budget.defender_trials,
        }

    def seeds(self, budget: Budget) -> int:
        return self.confirm_seeds or max(MIN_CONFIRM_SEEDS, budget.ci_seeds)


def audit_study_name(duel: str, side: str, round_: int = 1) -> str:
    """``<duel>/audit/<side>``: the audit's study of one side."""
    return f"{duel}/audit/{side}"


def load_duel(where: str | Path) -> tuple[Path, dict[str, Any]]:
    """The folder and ``duel.json`` of a finished duel: ``where`` is the duel's folder, its
    ``duel.json``, or its name under ``runs/duels``."""
    candidates = [Path(where), Path(where) / "duel.json", Path("runs/duels") / str(where)]
    for c in candidates:
        path = c / "duel.json" if c.is_dir() else c
        if path.is_file() and path.name == "duel.json":
            import json

            try:
                return path.parent, json.loads(path.read_text())
            except ValueError as e:
                raise AuditError(f"{path} is not a duel.json ({e}); run the duel again") from None
    raise AuditError(
        f"no finished duel at {where!s}: give the duel's name (its folder under runs/duels) or "
        "the folder it wrote with --out"
    )


def spec_of(result: dict[str, Any]) -> DuelSpec:
    """The :class:`DuelSpec` a ``duel.json`` was played with (the cache as it recorded)."""
    d = result["duel"]
    setting = Setting(
        data=DataRef(**d["data"]), model=d["model"], gates=Gates(**d["gates"]), cache_url=d["cache"]
    )
    return DuelSpec(d["attacker"], d["defender"], setting, Budget(**d["budget"]), seed=d["seed"])


def final_mixes(
    result: dict[str, Any],
) -> tuple[list[AttackerStrategy], np.ndarray, list[DefenderStrategy], np.ndarray]:
    """The strategies in the support of each final mix, and their weights."""
    try:
        attackers = [AttackerStrategy.from_description(e) for e in result["attacker_mix"]]
        defenders = [DefenderStrategy.from_description(e) for e in result["defender_mix"]]
    except ValueError as e:
        raise AuditError(f"duel {result['duel']['name']}: {e}") from None
    x = np.array([e["weight"] for e in result["attacker_mix"]])
    y = np.array([e["weight"] for e in result["defender_mix"]])
    return attackers, x / x.sum(), defenders, y / y.sum()


def run_audit(
    result: dict[str, Any],
    audit_spec: AuditSpec,
    *,
    storage_url: str,
    out_dir: str | Path,
    resume: bool = False,
    compute: Compute | None = None,
    hooks: Hooks | None = None,
    cache_url: str | None = None,
) -> dict[str, Any]:
    """Audit the duel of ``result`` (its ``duel.json``), add ``audit`` to it, rewrite
    ``out_dir/duel.json``, and return the audit's record."""
    start = time.perf_counter()
    hooks = hooks or Hooks()
    compute = compute or Compute()
    spec = spec_of(result)
    if cache_url:
        spec = replace(spec, setting=replace(spec.setting, cache_url=cache_url))
    name = result["duel"]["name"]
    attackers, x, defenders, y = final_mixes(result)
    storage_url = absolute_storage(storage_url)
    preflight(spec, storage_url)
    with hold_lease(storage_url, f"{name}/audit", resume=resume), on_local_ray(lambda _: None):
        device = resolve_compute(compute)
        setting = replace(
            spec.setting, cache_url=absolute_url(spec.setting.cache_url), device=device
        )
        record = _audit(
            spec, name, setting, attackers, x, defenders, y, result, audit_spec,
            storage_url, Path(out_dir), resume, compute, hooks,
        )  # fmt: skip
    record["seconds"] = round(time.perf_counter() - start, 2)
    record = stamped(
        record,
        data=spec.setting.data,
        seeds=[*record["search_seeds"], *record["confirmation_seeds"]],
    )
    result["audit"] = record
    (Path(out_dir) / "duel.json").write_text(dumps(result, indent=2, default=float))
    return record


def _audit(
    spec: DuelSpec,
    name: str,
    setting: Setting,
    attackers: list[AttackerStrategy],
    x: np.ndarray,
    defenders: list[DefenderStrategy],
    y: np.ndarray,
    result: dict[str, Any],
    audit_spec: AuditSpec,
    storage_url: str,
    out: Path,
    resume: bool,
    compute: Compute,
    hooks: Hooks,
) -> dict[str, Any]:
    data = setting.splits()
    trials = audit_spec.side_trials(spec.budget)
    search_seeds = tuple(spec.seed + SEARCH_SEED_OFFSET + i for i in range(spec.budget.seeds))
    confirm = [spec.seed + CONFIRM_SEED_OFFSET + i for i in range(audit_spec.seeds(spec.budget))]
    out.mkdir(parents=True, exist_ok=True)
    spaces = (
        AttackerSpace(parse_attackers(spec.attacker), num_classes=data.num_classes),
        DefenderSpace(parse_defenders(spec.defender), num_classes=data.num_classes),
    )
    oracles = {
        space.side: TuneOracle(
            space=space,
            duel=name,
            setting=setting,
            seeds=search_seeds,
            trials=trials[space.side],
            storage_url=storage_url,
            tune_dir=str((out / "tune").resolve()),
            seed=spec.seed,
            resume=resume,
            compute=compute,
            on_trial=hooks.on_trial,
            sampler=audit_spec.sampler,
            warm_start=False,
            naming=audit_study_name,
            extend=True,
        )
        for space in spaces
    }
    tally = Tally()
    measured: list[tuple[AttackerStrategy, DefenderStrategy]] = []  # the pairs confirmed

    def measure(
        side: str, strategy: Any, opponents: Sequence[Any], weights: np.ndarray
    ) -> list[float]:
        if hooks.on_phase:
            hooks.on_phase(
                f"audit: the {side}'s candidate against {len(opponents)} opponent(s) on "
                f"{len(confirm)} confirmation seed(s)"
            )
        if side == "attacker":
            played = play_rows(
                [(strategy, list(opponents))], confirm, setting, tally, compute=compute
            )
            cells = played[0]  # [defender][seed]
            measured.extend((strategy, d) for d in opponents)
        else:
            played = play_rows(
                [(a, [strategy]) for a in opponents], confirm, setting, tally, compute=compute
            )
            cells = [row[0] for row in played]  # [attacker][seed]
            measured.extend((a, strategy) for a in opponents)
        w = np.asarray(weights) / np.sum(weights)
        return [float(sum(wk * c[s].payoff for wk, c in zip(w, cells, strict=True)))
                for s in range(len(confirm))]  # fmt: skip

    found = audit(
        attackers,
        defenders,
        x,
        y,
        lower_bound=float(result["lower_bound"]),
        upper_bound=float(result["upper_bound"]),
        attacker_oracle=oracles["attacker"],
        defender_oracle=oracles["defender"],
        measure=measure,
        known_attacker=known_response(result, "attacker", spaces[0], storage_url),
        known_defender=known_response(result, "defender", spaces[1], storage_url),
    )
    for oracle in oracles.values():
        tally.merge(oracle.tally)
    record = describe_audit(found, audit_spec, trials, search_seeds, confirm, tally)
    record["cells"] = cell_keys(measured, confirm, setting)
    return record


def known_response(
    result: dict[str, Any], side: str, space: AttackerSpace | DefenderSpace, storage_url: str
) -> Response[Any] | None:
    """The duel's own best response of ``side`` against the final mixes: the best trial of its
    last round's study (the strategy behind the duel's bound), or ``None`` where the storage no
    longer holds it."""
    import optuna

    rounds = result.get("rounds") or []
    name = rounds[-1].get(f"{side}_study") if rounds else None
    if not name:
        return None
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(storage_url))
    except KeyError:
        return None
    best = best_trial(study, space.direction)
    if best is None:
        return None
    return Response(space.decode(best.params), float(best.value or 0.0), name, 0)


def describe_audit(
    found: Audit[Any, Any],
    audit_spec: AuditSpec,
    trials: dict[str, int],
    search_seeds: Sequence[int],
    confirm: Sequence[int],
    tally: Tally,
) -> dict[str, Any]:
    """The ``audit`` record of ``duel.json``."""

    def response(r: AuditedResponse) -> dict[str, Any]:
        return {
            "strategy": r.strategy.label,
            **r.strategy.describe(),
            "search_value": r.search_value,
            "confirmed": r.confirmed.as_dict(),
            "bound": r.bound,
            "beats_bound": r.beats_bound,
            "study": r.study,
            "trials": r.trials,
            "source": r.source,
        }

    return {
        "sampler": audit_spec.sampler,
        "trials": trials,
        "search_seeds": list(search_seeds),
        "confirmation_seeds": list(confirm),
        "attacker": response(found.attacker),
        "defender": response(found.defender),
        "exploitability": found.exploitability.as_dict(),
        "stands": found.stands,
        "trainings": tally.trained,
        "cache_hits": tally.cache_hits,
    }
