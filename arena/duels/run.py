"""``arena duel``: the double oracle over Optuna studies, from settings to ``duel.json``.

A duel is named after its settings (``tca-vs-abs-<hash>``), so an identical second run finds
its studies finished in the storage and its cells in the cache, and replays without training;
a run cut short is continued with ``resume``. See DESIGN.md, "The solver".

Before any work the duel opens its storage (a server that cannot be reached is an error),
settles where it runs (``Compute``: a local Ray instance or a cluster, joined now) and on which
device, and on a cluster checks that every node sees the artifact cache. ``duel.json`` records
how many trials and cell tasks ran on each node.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from arena.cell.play import (
    Tally,
    cell_key,
    check_measurable,
    check_memory_for_training,
    mean_payoff,
)
from arena.cell.provenance import stamped
from arena.cell.pruning import GateRule
from arena.cell.rules import VERSION as RULES_VERSION
from arena.cell.runner import (
    Compute,
    check_plugins,
    check_shared_cache,
    on_local_ray,
    play_rows,
    reap_session,
    resolve_compute,
)
from arena.cell.setting import Setting
from arena.core.cache import ArtifactCache, content_key
from arena.core.config import searchable_fields
from arena.core.jsonio import dumps
from arena.core.train import TrainConfig
from arena.duels.interval import cell_noise, judge_stop, value_interval
from arena.game import Outcome, Round, double_oracle
from arena.game.budget import Budget
from arena.game.noise import gap_resolution, pooled_sd
from strategies import attack_class, defense_class
from strategies.defenses import Pipeline, parse_defenses
from strategies.players import (
    AttackerStrategy,
    DefenderStrategy,
    parse_attackers,
    parse_defenders,
)
from studies.events import TrialEvent
from studies.lease import hold as hold_lease
from studies.oracle import TuneOracle, respond_together
from studies.spaces import AttackerSpace, DefenderSpace
from studies.storage import (
    DEFAULT_STORAGE,
    check_writable,
    journal_path,
    open_storage,
    redact,
    sqlite_path,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DuelSpec:
    """Everything that decides a duel's outcome (and so its name)."""

    attacker: str
    defender: str
    setting: Setting
    budget: Budget
    seed: int = 0

    @property
    def name(self) -> str:
        spec = {
            "attacker": self.attacker,
            "defender": self.defender,
            **self.setting.describe(),
            "rules": RULES_VERSION,
            "strategies": self.strategy_versions(),
            "budget": self.budget.identity(),
            "seed": self.seed,
        }
        return f"{self.attacker}-vs-{self.defender}-{content_key('duel', spec)[:8]}"

    def strategy_versions(self) -> dict[str, dict[str, int]]:
        """The version of every attack and defense (and of the pipeline, for one) the duel may
        play, by name."""
        choices = parse_defenders(self.defender)
        defenses = sorted({n for spec in choices for n in parse_defenses(spec)})
        versions = {
            "attacks": {n: attack_class(n).version for n in parse_attackers(self.attacker)},
            "defenses": {name: defense_class(name).version for name in defenses},
        }
        if any("+" in spec for spec in choices):
            versions["defenses"]["pipeline"] = Pipeline.version
        return versions

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(self.seed + i for i in range(self.budget.seeds))


@dataclass
class Hooks:
    """What a person watching sees: a line per trial, a line per round."""

    on_trial: Callable[[TrialEvent], None] | None = None
    on_round: Callable[[Round], None] | None = None
    on_phase: Callable[[str], None] | None = None


def absolute_url(url: str) -> str:
    """A local path made absolute (Ray workers run in other folders); URLs unchanged."""
    return url if "://" in url else os.path.abspath(url)


def absolute_storage(url: str) -> str:
    """A SQLite or journal file's URL with an absolute path; other URLs unchanged."""
    path = sqlite_path(url)
    if path is not None:
        return "sqlite:///" + os.path.abspath(path)
    path = journal_path(url)
    if path is not None:
        return "journal://" + os.path.abspath(path)
    return url


def run_duel(
    spec: DuelSpec,
    *,
    name: str | None = None,
    storage_url: str = DEFAULT_STORAGE,
    out_dir: str | Path = "runs/duels",
    resume: bool = False,
    address: str | None = None,
    compute: Compute | None = None,
    hooks: Hooks | None = None,
) -> dict[str, Any]:
    """Play the duel and write ``out_dir/duel.json``; returns its content. ``address``
    (shorthand for ``compute.address``) joins a Ray cluster; ``compute`` also picks the device,
    the resources per trial and the retries of lost trials."""
    hooks = hooks or Hooks()
    start = time.perf_counter()
    name = name or spec.name
    compute = compute or Compute()
    if address:
        compute = replace(compute, address=address)
    storage_url = absolute_storage(storage_url)
    preflight(spec, storage_url)
    # one driver per duel: refused here if another holds the duel's lease (studies/lease.py)
    with (
        hold_lease(storage_url, name, resume=resume) as lease,
        on_local_ray(lease.note_ray_session),
    ):
        stale = lease.took_over
        if stale is not None and stale.ray_session and stale.host == socket.gethostname():
            reaped = reap_session(stale.ray_session, stale.pid)
            if reaped:
                log.warning("stopped %d Ray process(es) the killed driver left running", reaped)
        return _run_held(spec, name, storage_url, out_dir, resume, compute, hooks, start)


def preflight(spec: DuelSpec, storage_url: str) -> None:
    """What a duel needs, checked before any work, each failure one line: a storage that can be
    reached and written, a cache that can be written, data with enough images of every class
    to measure a cell, and the memory to train the network at the largest searched batch."""
    check_writable(open_storage(storage_url), storage_url)
    ArtifactCache(spec.setting.cache_url).check_writable()
    check_measurable(spec.setting.splits())
    # the largest batch the attacker's search may pick
    check_memory_for_training(spec.setting, max(searched_batch_sizes()))


def _run_held(
    spec: DuelSpec,
    name: str,
    storage_url: str,
    out_dir: str | Path,
    resume: bool,
    compute: Compute,
    hooks: Hooks,
    start: float,
) -> dict[str, Any]:
    """The body of :func:`run_duel`, run while this driver holds the duel's lease."""
    device = resolve_compute(compute)  # joins the cluster, if any; "cuda" with no GPU fails
    setting = replace(spec.setting, cache_url=absolute_url(spec.setting.cache_url), device=device)
    if compute.target:
        check_shared_cache(setting.cache_url)
        check_plugins()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = setting.splits()
    attackers = AttackerSpace(parse_attackers(spec.attacker), num_classes=data.num_classes)
    defenders = DefenderSpace(parse_defenders(spec.defender), num_classes=data.num_classes)
    tally = Tally()
    oracles = {
        side: TuneOracle(
            space=space,
            duel=name,
            setting=setting,
            seeds=spec.seeds,
            trials=trials,
            storage_url=storage_url,
            tune_dir=str((out / "tune").resolve()),
            seed=spec.seed,
            resume=resume,
            compute=compute,
            on_trial=hooks.on_trial,
            prune=GateRule() if spec.budget.prune else None,
            lockstep=spec.budget.reproducible,
        )
        for side, space, trials in (
            ("attacker", attackers, spec.budget.attacker_trials),
            ("defender", defenders, spec.budget.defender_trials),
        )
    }
    cell_seconds = 0.0
    per_seed: dict[tuple[AttackerStrategy, DefenderStrategy], list[float]] = {}

    def cells(pairs: Sequence[tuple[AttackerStrategy, DefenderStrategy]]) -> list[float]:
        nonlocal cell_seconds
        t0 = time.perf_counter()
        by_attacker: dict[AttackerStrategy, list[DefenderStrategy]] = {}
        for a, d in pairs:
            by_attacker.setdefault(a, []).append(d)
        rows = list(by_attacker.items())
        if hooks.on_phase:
            hooks.on_phase(f"payoff matrix: {len(pairs)} new cell(s)")
        played = play_rows(rows, spec.seeds, setting, tally, compute=compute)
        values = {}
        for (a, ds), row in zip(rows, played, strict=True):
            for d, c in zip(ds, row, strict=True):
                values[a, d] = mean_payoff(c)
                per_seed[a, d] = [cell.payoff for cell in c]
        cell_seconds += time.perf_counter() - t0
        return [values[p] for p in pairs]

    def resolution() -> float | None:
        """The smallest gap the duel's cells resolve, from their spread over its seeds."""
        sd = pooled_sd(list(per_seed.values()))
        return None if sd is None else gap_resolution(sd, spec.budget.seeds)

    outcome = double_oracle(
        attackers.defaults(),
        defenders.defaults(),
        cells=cells,
        attacker_oracle=oracles["attacker"],
        defender_oracle=oracles["defender"],
        rounds=spec.budget.rounds,
        epsilon=spec.budget.epsilon,
        on_round=hooks.on_round,
        resolution=resolution,
        respond=respond_together(oracles["attacker"], oracles["defender"]),
    )
    t0 = time.perf_counter()
    ci, fresh = value_interval(
        outcome, spec.budget, spec.seed, setting, tally, compute, on_phase=hooks.on_phase
    )
    ci_seconds = time.perf_counter() - t0
    cell_nodes = dict(tally.nodes)
    for oracle in oracles.values():
        tally.merge(oracle.tally)
    stopping = judge_stop(outcome, spec.budget, fresh)
    result = summarize(outcome, ci, tally)
    result["stopped"] = stopping["reason"]
    result["stopping"] = stopping
    result["payoff_matrix"].update(cell_noise(outcome, spec.seeds, per_seed, fresh, ci["seeds"]))
    result["cells"] = {
        "payoff_matrix": cell_keys(list(per_seed), spec.seeds, setting),
        "interval": cell_keys(
            [(outcome.attackers[i], outcome.defenders[j]) for i, j in fresh], ci["seeds"], setting
        ),
    }
    result["duel"] = {
        "name": name,
        "attacker": spec.attacker,
        "defender": spec.defender,
        "storage": redact(storage_url),  # duel.json and report.md never hold a password
        "cache": setting.cache_url,
        "ray": compute.target or "local",
        "device": device,
        "budget": asdict(spec.budget),
        "seed": spec.seed,
        **setting.describe(),
    }
    result["duel"]["versions"] = {
        **result["duel"]["versions"],
        "rules": RULES_VERSION,
        **spec.strategy_versions(),
    }
    result["seconds"] = {
        "total": round(time.perf_counter() - start, 2),
        "payoff_matrix": round(cell_seconds, 2),
        "confidence_interval": round(ci_seconds, 2),
        "studies": round(sum(sum(o.tuner_seconds) for o in oracles.values()), 2),
    }
    result["trials"] = [asdict(e) for o in oracles.values() for e in o.events]
    result["nodes"] = node_counts(result["trials"], cell_nodes)
    result = stamped(result, data=setting.data, seeds=[*spec.seeds, *ci["seeds"]])
    (out / "duel.json").write_text(dumps(result, indent=2, default=float))
    return result


def cell_keys(
    pairs: Sequence[tuple[AttackerStrategy, DefenderStrategy]],
    seeds: Sequence[int],
    setting: Setting,
) -> list[str]:
    """The cache keys of the cells of ``pairs`` on ``seeds``, sorted: what ``duel.json`` lists
    under ``cells`` (and its audit under ``audit.cells``), so that ``arena cache prune`` keeps
    them and what they used."""
    return sorted({cell_key(a, d, s, setting) for a, d in pairs for s in seeds})


def node_counts(trials: Sequence[dict[str, Any]], cell_tasks: dict[str, int]) -> dict[str, Any]:
    """Per Ray node id: the trials and the cell tasks this run executed there."""
    out: dict[str, dict[str, int]] = {}
    for t in trials:
        entry = out.setdefault(t["node"] or "unknown", {"trials": 0, "cell_tasks": 0})
        entry["trials"] += 1
    for node, n in cell_tasks.items():
        out.setdefault(node, {"trials": 0, "cell_tasks": 0})["cell_tasks"] += n
    return out


def _mix(strategies: Sequence[Any], weights: np.ndarray) -> list[dict[str, Any]]:
    order = np.argsort(-weights, kind="stable")
    return [
        {"weight": float(weights[i]), "strategy": strategies[i].label, **strategies[i].describe()}
        for i in order
        if weights[i] > 1e-9
    ]


def summarize(outcome: Outcome[Any, Any], ci: dict[str, Any], tally: Tally) -> dict[str, Any]:
    """The ``duel.json`` record of a finished double oracle."""
    last = outcome.rounds[-1]
    eq = outcome.equilibrium
    pure, worst = outcome.best_pure_defense()
    return {
        "value": eq.value,
        "value_ci": ci,
        "lower_bound": last.lower_bound,
        "upper_bound": last.upper_bound,
        "exploitability": last.gap,
        "stopped": outcome.stopped,
        "rounds": [asdict(r) for r in outcome.rounds],
        "attacker_mix": _mix(outcome.attackers, eq.attacker_mix),
        "defender_mix": _mix(outcome.defenders, eq.defender_mix),
        "payoff_matrix": {
            "attackers": [a.label for a in outcome.attackers],
            "defenders": [d.label for d in outcome.defenders],
            "values": outcome.matrix.tolist(),
        },
        "best_pure_defense": {
            "strategy": pure.label,
            **pure.describe(),
            "worst_case": worst,
            "worth_of_randomising": worst - eq.value,
        },
        "trainings": tally.trained,
        "cache_hits": tally.cache_hits,
    }


def searched_batch_sizes() -> tuple[int, ...]:
    """The batch sizes the attacker's recipe search may pick."""
    for f, rng in searchable_fields(TrainConfig):
        if f.name == "batch_size" and rng.choices is not None:
            return tuple(int(c) for c in rng.choices)
    return (TrainConfig().batch_size,)
