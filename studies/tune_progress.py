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

log = logging.getLogger(__name__)


class TrialProgress(tune.Callback):  # type: ignore[misc]
    def __init__(
        self, record: Callable[[TrialEvent], None], side: str, round_: int, study: str
    ) -> None:
        self.record, self.side, self.round, self.study = record, side, round_, study
        self.started: dict[str, float] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"side": self.side, "round": self.round, "study": self.study, "started": {}}

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.started[trial.trial_id] = time.perf_counter()

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        log.warning(
            "a trial of %s lost its worker or raised; running it again (retry %d of %d)",
            self.study,
            trial.run_metadata.num_failures,
            trial.max_failures,
        )

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if not hasattr(self, "record"):
            return
        result = trial.last_result or {}
        now = time.perf_counter()
        objective = result.get("objective")
        self.record(
            TrialEvent(
                side=self.side,
                round=self.round,
                study=self.study,
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
