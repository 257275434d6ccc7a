"""``arena table``: the leaderboard, one duel per (attack, defense) pair, static beside adaptive.

For each pair the table gives the **static** payoff (the attack and the defense at their
default settings, what papers report) and the **adaptive** value (the duel's game value) with
its 95% interval and, when audited, the audited exploitability (``arena audit``). Static and
adaptive are measured on the same fresh seeds (the duel's value-interval seeds), so the
**adaptive gap** (adaptive minus static) is a paired difference with its own interval. For each
defense the table gives its worst case over the attacks, static and adaptive, and the gap
between the two.

Every duel is an ordinary ``arena duel``: its studies are in the shared storage, its models
and cells in the shared cache, its ``duel.json`` and report under ``runs/duels/NAME`` (so
``arena audit NAME`` and the dashboard see it). A table run that was stopped continues with
``resume``: finished duels replay from storage and cache, an unfinished one continues its
studies.

The pairs run one after another, each spreading its trials and cells over every CPU (or the
cluster's nodes); with ``jobs`` above 1, that many duels (and their audits) run at once first
(:mod:`arena.duels.jobs`), and the table is then built from them, each duel replaying from
storage and cache. A small duel cannot keep a large cluster busy; several
at once can.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from arena.cell.play import Tally
from arena.cell.provenance import stamped
from arena.cell.runner import Compute, on_local_ray, play_rows
from arena.cell.setting import Setting
from arena.core.cache import ArtifactCache, content_key
from arena.core.jsonio import dumps
from arena.duels.audit import AuditSpec, run_audit
from arena.duels.jobs import run_jobs
from arena.duels.run import (
    DuelSpec,
    Hooks,
    absolute_url,
    run_duel,
)
from arena.game.budget import Budget
from arena.game.noise import t_interval
from strategies.players import parse_attackers, parse_defenders
from studies.spaces import AttackerSpace, DefenderSpace

COLUMNS = (
    "attacker",
    "defender",
    "static",
    "static_low",
    "static_high",
    "adaptive",
    "adaptive_low",
    "adaptive_high",
    "gap",
    "gap_low",
    "gap_high",
    "value",
    "lower_bound",
    "upper_bound",
    "audited_exploitability",
    "audit_low",
    "audit_high",
    "stands",
    "seeds",
    "trainings",
    "seconds",
    "duel",
)
"""The columns of ``table.csv``, one row per pair."""


def table_defenders(spec: str) -> list[str]:
    """The table's columns: ``"all"`` is every registered defense but ``none`` (one duel each;
    ``arena duel --defender all`` is the duel where the defender chooses among them), else the
    comma list, each a defense or a pipeline."""
    if spec == "all":
        return [d for d in parse_defenders("all") if "+" not in d]
    return parse_defenders(spec)


@dataclass(frozen=True)
class TableSpec:
    """The pairs of a table and what every duel shares: the setting, the budget, the seed and
    the audit (``audit``: ``None`` for none)."""

    attackers: tuple[str, ...]
    defenders: tuple[str, ...]
    setting: Setting
    budget: Budget
    seed: int = 0
    audit: AuditSpec | None = None

    @classmethod
    def parse(cls, attackers: str, defenders: str, **kwargs: Any) -> TableSpec:
        names = tuple(parse_attackers(attackers)), tuple(table_defenders(defenders))
        return cls(*names, **kwargs)

    def duels(self) -> list[DuelSpec]:
        """One duel per pair, attackers outermost."""
        return [
            DuelSpec(a, d, self.setting, self.budget, seed=self.seed)
            for a in self.attackers
            for d in self.defenders
        ]

    @property
    def name(self) -> str:
        spec = {
            "duels": [d.name for d in self.duels()],
            "audit": None if self.audit is None else asdict(self.audit),
        }
        return f"table-{content_key('table', spec)[:8]}"


@dataclass
class TableHooks:
    """What a person watching sees: each duel's own lines, and a line per pair."""

    duel: Hooks = field(default_factory=Hooks)
    audit: Hooks = field(default_factory=Hooks)
    on_pair: Callable[[int, int, dict[str, Any]], None] | None = None
    on_start: Callable[[int, int, DuelSpec], None] | None = None
    # the presentation layer's writers: a duel's report, and the table's files
    on_duel: Callable[[dict[str, Any], Path], object] | None = None
    on_record: Callable[[dict[str, Any], Path], object] | None = None


def static_payoffs(
    spec: DuelSpec, seeds: Sequence[int], compute: Compute, tally: Tally
) -> list[float]:
    """The default attack against the default defense on ``seeds``: the payoff a static
    evaluation reports (cells from the cache when the duel already played them)."""
    setting = replace(spec.setting, cache_url=absolute_url(spec.setting.cache_url))
    data = setting.splits()
    attacker = AttackerSpace(parse_attackers(spec.attacker), num_classes=data.num_classes)
    defender = DefenderSpace(parse_defenders(spec.defender), num_classes=data.num_classes)
    a, d = attacker.defaults()[0], defender.defaults()[0]
    with on_local_ray(lambda _: None):
        [[cells]] = play_rows([(a, [d])], seeds, setting, tally, compute=compute)
    return [c.payoff for c in cells]


def pair_row(result: dict[str, Any], static: Sequence[float], seconds: float) -> dict[str, Any]:
    """The table's row of one finished (and perhaps audited) duel."""
    ci = result["value_ci"]
    adaptive = ci["values"] if ci["values"] else [result["value"]]
    s = t_interval(static)
    a = t_interval(adaptive)
    gap = t_interval([x - y for x, y in zip(adaptive, static, strict=True)], clip=None)
    audit = result.get("audit") or {}
    exploit = audit.get("exploitability") or {}
    return {
        "attacker": result["duel"]["attacker"],
        "defender": result["duel"]["defender"],
        "static": s.mean,
        "static_low": s.low,
        "static_high": s.high,
        "adaptive": a.mean,
        "adaptive_low": a.low,
        "adaptive_high": a.high,
        "gap": gap.mean,
        "gap_low": gap.low,
        "gap_high": gap.high,
        "value": result["value"],
        "lower_bound": result["lower_bound"],
        "upper_bound": result["upper_bound"],
        "audited_exploitability": exploit.get("mean"),
        "audit_low": exploit.get("low"),
        "audit_high": exploit.get("high"),
        "stands": audit.get("stands"),
        "seeds": len(static),
        "trainings": result["trainings"] + audit.get("trainings", 0),
        "seconds": round(seconds, 1),
        "duel": result["duel"]["name"],
    }


def interval_seeds(result: dict[str, Any]) -> list[int]:
    """The seeds static and adaptive are both measured on: the value interval's fresh seeds,
    or the duel's own where it had none."""
    seeds = list(result["value_ci"]["seeds"])
    if seeds:
        return seeds
    d = result["duel"]
    return [d["seed"] + i for i in range(d["budget"]["seeds"])]


def run_table(
    spec: TableSpec,
    *,
    storage_url: str,
    out_dir: str | Path,
    duels_dir: str | Path = "runs/duels",
    resume: bool = False,
    compute: Compute | None = None,
    hooks: TableHooks | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Play (or replay) every pair's duel, audit it if asked, and write ``table.json`` to
    ``out_dir`` after each pair (so what is done is there if the run stops), handing it to
    ``hooks.on_record`` (the CLI writes ``table.csv``, ``table.md`` and ``table.png`` there).
    ``jobs`` above 1 first runs that many duels at once (:func:`run_jobs`). Returns
    ``table.json``'s content."""
    start = time.perf_counter()
    hooks = hooks or TableHooks()
    compute = compute or Compute()
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {jobs}")
    if jobs > 1:
        say = hooks.duel.on_phase or (lambda _: None)
        with on_local_ray(lambda _: None):
            run_jobs(
                spec.duels(), spec.audit, storage_url=storage_url, duels_dir=Path(duels_dir),
                resume=resume, compute=compute, jobs=jobs, say=say,
            )  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    seeds: set[int] = set()
    tally = Tally()
    duels = spec.duels()
    for i, duel in enumerate(duels):
        if hooks.on_start:
            hooks.on_start(i, len(duels), duel)
        t0 = time.perf_counter()
        folder = Path(duels_dir) / duel.name
        result = run_duel(
            duel,
            storage_url=storage_url,
            out_dir=folder,
            resume=resume,
            compute=compute,
            hooks=hooks.duel,
        )
        if spec.audit is not None:
            run_audit(
                result,
                spec.audit,
                storage_url=storage_url,
                out_dir=folder,
                resume=resume,
                compute=compute,
                hooks=hooks.audit,
            )
        if hooks.on_duel:
            hooks.on_duel(result, folder)
        measured = interval_seeds(result)
        seeds.update([*duel.seeds, *measured])
        static = static_payoffs(duel, measured, compute, tally)
        rows.append(pair_row(result, static, time.perf_counter() - t0))
        record = table_record(spec, rows, time.perf_counter() - start, seeds)
        (out / "table.json").write_text(dumps(record, indent=2, default=float))
        if hooks.on_record:
            hooks.on_record(record, out)
        if hooks.on_pair:
            hooks.on_pair(i, len(duels), rows[-1])
    return record


def defense_summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each defense's worst case over the attacks, static and adaptive, and the gap."""
    out = []
    for defender in dict.fromkeys(r["defender"] for r in rows):
        mine = [r for r in rows if r["defender"] == defender]
        static = max(mine, key=lambda r: r["static"])
        adaptive = max(mine, key=lambda r: r["adaptive"])
        out.append(
            {
                "defender": defender,
                "static_worst": static["static"],
                "static_worst_attacker": static["attacker"],
                "adaptive_worst": adaptive["adaptive"],
                "adaptive_worst_high": adaptive["adaptive_high"],
                "adaptive_worst_attacker": adaptive["attacker"],
                "adaptive_gap": adaptive["adaptive"] - static["static"],
            }
        )
    return sorted(out, key=lambda r: r["adaptive_worst"])


def table_record(
    spec: TableSpec, rows: list[dict[str, Any]], seconds: float, seeds: Iterable[int]
) -> dict[str, Any]:
    """``table.json``: the pairs, each defense's summary, and the seeds every figure was
    measured on (``seeds``: the duels' own and their intervals')."""
    record = {
        "name": spec.name,
        "attackers": list(spec.attackers),
        "defenders": list(spec.defenders),
        "budget": asdict(spec.budget),
        "audit": None if spec.audit is None else asdict(spec.audit),
        **spec.setting.describe(),
        "pairs": rows,
        "complete": len(rows) == len(spec.attackers) * len(spec.defenders),
        "defenses": defense_summary(rows),
        "seconds": round(seconds, 1),
    }
    return stamped(record, data=spec.setting.data, seeds=sorted(seeds))


def plan(
    spec: TableSpec,
    duels_dir: str | Path = "runs/duels",
    slots: int | None = None,
) -> str:
    """What the table would run, and an estimate of how long: a duel with a ``duel.json``
    replays (its recorded time is not spent again); another costs its expected cell count
    times the mean measured time of a cell in the cache, over this machine's cores."""
    slots = slots or max(1, os.cpu_count() or 1)
    per_cell, measured = cell_cost(spec.setting.cache_url)
    b = spec.budget
    # attacker and defender trials of round r play each of the opponent's r strategies (or
    # fewer) on every seed; the interval re-plays about half the strategies on its seeds
    support = (b.rounds + 1) / 2
    cells = b.seeds * (b.attacker_trials + b.defender_trials) * b.rounds * support
    cells += b.ci_seeds * max(1.0, support) ** 2
    if spec.audit is not None:
        trials = spec.audit.side_trials(b)
        cells += (trials["attacker"] + trials["defender"]) * support
        cells += spec.audit.seeds(b) * 2 * support
    lines = [
        f"table {spec.name}: {len(spec.attackers)} attack(s) x {len(spec.defenders)} "
        f"defense(s), {len(spec.duels())} duels, on {slots} parallel slot(s); "
        + (
            f"a cell takes {per_cell:.1f} s (mean of {measured} cell(s) in the cache)"
            if measured
            else f"no cell in the cache yet: {per_cell:.1f} s a cell assumed"
        ),
    ]
    total = 0.0
    for duel in spec.duels():
        done = (Path(duels_dir) / duel.name / "duel.json").is_file()
        seconds = 0.0 if done else cells * per_cell / slots
        total += seconds
        lines.append(
            f"  {duel.attacker} vs {duel.defender} ({duel.name}): "
            + ("done, replays from storage" if done else f"~{cells:.0f} cells, ~{seconds:.0f} s")
        )
    lines.append(f"estimated total: ~{total:.0f} s (~{total / 60:.0f} min)")
    return "\n".join(lines)


ASSUMED_CELL_SECONDS = 4.0
"""A cell's time when the cache has none measured: a 16-pixel `digits` BadNet trained and
scored on this 2-core machine takes 2-7 s (bench/README.md)."""


def cell_cost(cache_url: str, most: int = 2000) -> tuple[float, int]:
    """The mean wall time of the cells stored in the cache (at most ``most`` read) and how
    many it averaged; :data:`ASSUMED_CELL_SECONDS` where there are none."""
    cache = ArtifactCache(cache_url)
    seconds = []
    try:
        paths = cache.fs.glob(f"{cache.root}/cell/*/*.json")[:most]
    except (OSError, ValueError):
        paths = []
    for p in paths:
        try:
            total = json.loads(cache.fs.cat_file(p)).get("seconds", {}).get("total")
        except (OSError, ValueError):
            continue
        if isinstance(total, int | float) and total > 0:
            seconds.append(float(total))
    if not seconds:
        return ASSUMED_CELL_SECONDS, 0
    return float(np.mean(seconds)), len(seconds)
