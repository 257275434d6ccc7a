"""Several studies' searchers behind one Ray Tune searcher, so one ``Tuner`` runs them all.

:class:`Interleave` asks each study's searcher in turn for a trial until that study has as many
as it was allotted, tags the trial's config with the study's index (:data:`STUDY_KEY`, which
:func:`studies.trial.run_trial` reads to pick the study's job) and routes every result back to
the searcher that suggested it. Each searcher keeps its own metric, direction, sampler and
Optuna study; the turns are fixed (round robin over the studies with trials left), so a batch
of suggestions is the same whichever trial ends first.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

from ray.tune.search import Searcher

from studies.trial import STUDY_KEY


class Interleave(Searcher):  # type: ignore[misc]
    """Round-robin over ``searchers``, ``counts[i]`` trials from the i-th (module docstring)."""

    def __init__(self, searchers: Sequence[Searcher], counts: Sequence[int]) -> None:
        if len(searchers) != len(counts) or not searchers:
            raise ValueError("one trial count per searcher, and at least one searcher")
        # Tune's own metric and mode go unused: each searcher is told its results by itself
        super().__init__(metric="objective", mode="max")
        self.searchers = list(searchers)
        self.left = [int(c) for c in counts]
        self.owner: dict[str, int] = {}
        self.turn = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | None:  # or Searcher.FINISHED
        order = [(self.turn + k) % len(self.searchers) for k in range(len(self.searchers))]
        waiting = False
        for i in order:
            if self.left[i] <= 0:
                continue
            config = self.searchers[i].suggest(trial_id)
            if config is None:  # this one has nothing now; another may
                waiting = True
                continue
            if config == Searcher.FINISHED:
                self.left[i] = 0
                continue
            self.left[i] -= 1
            self.owner[trial_id] = i
            self.turn = (i + 1) % len(self.searchers)
            return {**config, STUDY_KEY: i}
        return None if waiting else Searcher.FINISHED  # type: ignore[return-value]

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self.owner:
            self.searchers[self.owner[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        i = self.owner.pop(trial_id, None)
        if i is not None:
            self.searchers[i].on_trial_complete(trial_id, result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        """The turns here, each searcher's state beside it (``PATH.0``, ``PATH.1``, ...)."""
        for i, searcher in enumerate(self.searchers):
            searcher.save(f"{checkpoint_path}.{i}")
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"left": self.left, "owner": self.owner, "turn": self.turn}, f)

    def restore(self, checkpoint_path: str) -> None:
        for i, searcher in enumerate(self.searchers):
            searcher.restore(f"{checkpoint_path}.{i}")
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))  # noqa: S301 - Tune's own file of this run
