"""A Ray Tune callback that times each trial from the driver and hands it to the oracle.

Kept in its own module so that Ray Tune is imported only when trials run. Tune saves its
callbacks with the experiment's state; this one saves nothing (the function it reports to, the
oracle's, with whatever display it drives, stays in the driver).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ray import tune

from studies.events import TrialEvent
from studies.trial import STUDY_KEY

log = logging.getLogger(__name__)


Study = tuple[Callable[[TrialEvent], None] | None, str, int, str]
"""Where a study's trials are told (its oracle's ``record``), its side, round and name."""


class TrialProgress(tune.Callback):  # type: ignore[misc]
    """Each finished trial as a :class:`TrialEvent`, told to its study's oracle (the study is
    the trial config's :data:`studies.trial.STUDY_KEY`, or the only one)."""

    def __init__(self, studies: list[Study]) -> None:
        self.studies = studies
        self.started: dict[str, float] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"studies": [(None, *rest) for _, *rest in self.studies], "started": {}}

    def _study(self, trial: Any) -> Study:
        return self.studies[int((trial.config or {}).get(STUDY_KEY, 0))]

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.started[trial.trial_id] = time.perf_counter()

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        log.warning(
            "a trial of %s lost its worker or raised; running it again (retry %d of %d)",
            self._study(trial)[3],
            trial.run_metadata.num_failures,
            trial.max_failures,
        )

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        record, side, round_, study = self._study(trial)
        if record is None:  # restored from Tune's saved state: no oracle to tell
            return
        result = trial.last_result or {}
        now = time.perf_counter()
        objective = result.get("objective")
        record(
            TrialEvent(
                side=side,
                round=round_,
                study=study,
                number=0,  # the oracle numbers its events
                objective=float("nan") if objective is None else float(objective),
                strategy=str(result.get("strategy", "?")),
                wall_seconds=now - self.started.pop(trial.trial_id, now),
                inner_seconds=float(result.get("inner_seconds", float("nan"))),
                trained=int(result.get("trained", 0)),
                cache_hits=int(result.get("cache_hits", 0)),
                node=str(result.get("node", "")),
                retries=int(trial.run_metadata.num_failures),
                pruned=str(result.get("pruned") or ""),
            )
        )
