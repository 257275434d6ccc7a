"""What a trial computes: its strategy against the opponent mix, scored cell by cell.

Kept apart from the oracle (``studies/oracle.py``), which drives the studies, and from the
trial's Ray Tune entry point (``studies/trial.py``), which must stay light: this module imports
the cells, torch and the strategies, which only the processes that score trials need.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from arena.cell.play import Tally, mean_payoff, play, play_row
from arena.cell.pruning import GateRule, TrialPruned, watching
from arena.cell.result import CellResult
from arena.cell.rules import METRICS
from arena.cell.setting import Setting
from strategies.players import AttackerStrategy
from studies.spaces import AttackerSpace, DefenderSpace

Space = AttackerSpace | DefenderSpace


@dataclass(frozen=True)
class TrialJob:
    """What a trial needs besides its parameters (shipped once through Ray's object store)."""

    space: Space
    opponents: tuple[Any, ...]
    weights: tuple[float, ...]
    seeds: tuple[int, ...]
    setting: Setting
    prune: GateRule | None = None  # stops an attacker's BadNet that cannot pass the gate


def score_trial(params: dict[str, Any], job: TrialJob) -> dict[str, Any]:
    """The trial's objective and metrics: its strategy against each opponent of the support,
    weighted by the opponent's mix, each cell averaged over the duel's seeds. An attacker's
    trial also returns the learning ``curve`` of the first BadNet it trains; one that
    ``job.prune`` stopped returns ``objective: None`` and ``pruned`` (its reason), which its
    study records as a pruned trial (:mod:`arena.cell.pruning`)."""
    start = time.perf_counter()
    strategy = job.space.decode(params)
    if isinstance(strategy, AttackerStrategy):
        with watching(job.prune) as watch:
            try:
                rows = play_row(strategy, job.opponents, job.seeds, job.setting)
            except TrialPruned as stop:
                return {
                    "objective": None,
                    "pruned": stop.reason,
                    "curve": watch.curve,
                    "gate_threshold": watch.threshold,
                    "strategy": strategy.label,
                    "trained": 0,  # the stopped BadNet is not kept
                    "cache_hits": 0,
                    "inner_seconds": time.perf_counter() - start,
                }
        curve, threshold = watch.curve, watch.threshold
    else:
        curve, threshold = [], None
        rows = [[play(a, strategy, s, job.setting) for s in job.seeds] for a in job.opponents]
    weights = np.asarray(job.weights) / sum(job.weights)
    cells: list[CellResult] = [c for row in rows for c in row]

    def weighted(value: Callable[[CellResult], float | None]) -> float | None:
        """Mix-weighted mean over opponents of the seed-mean; cells without the value (the
        user's gate fired, so no defense ran) are left out, ``None`` if all are."""
        total = norm = 0.0
        for w, row in zip(weights, rows, strict=True):
            values = [v for v in map(value, row) if v is not None]
            if values:
                total, norm = total + w * float(np.mean(values)), norm + w
        return total / norm if norm else None

    margins = [c.gate_margins() for c in cells]
    tally = Tally()
    for c in cells:
        tally.add(c)
    return {
        "objective": weighted(_payoff),
        **{m: weighted(functools.partial(CellResult.metric, name=m)) for m in METRICS},
        "flagged": weighted(lambda c: _share(c.detection.badnet)),
        "clean_flagged": weighted(lambda c: _share(c.detection.clean)),
        "constraints": [max(m[0] for m in margins), max(m[1] for m in margins)],
        "payoffs": [mean_payoff(row) for row in rows],
        "strategy": strategy.label,
        "trained": tally.trained,
        "cache_hits": tally.cache_hits,
        "inner_seconds": time.perf_counter() - start,
        "curve": curve,
        "gate_threshold": threshold,
    }


def _payoff(cell: CellResult) -> float | None:
    return cell.payoff


def _share(verdict: bool | None) -> float | None:
    return None if verdict is None else float(verdict)
