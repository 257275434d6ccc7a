"""Ray Tune searchers that wrap Arena's ``OptunaSearch``: several studies behind one ``Tuner``,
and a search that does not depend on which trial ends first.

:class:`Interleave` asks each study's searcher in turn for a trial until that study has as many
as it was allotted, tags the trial's config with the study's index (:data:`STUDY_KEY`, which
:func:`studies.trial.run_trial` reads to pick the study's job) and routes every result back to
the searcher that suggested it. Each searcher keeps its own metric, direction, sampler and
Optuna study; the turns are fixed (round robin over the studies with trials left), so the
sequence of suggestions does not depend on which trial ends first.

:class:`Lagged` (``--reproducible``) tells the searcher it wraps of the trials in the order it
suggested them, each only once the trial it is ``lag`` places behind is about to be sampled,
so that every sample is drawn from the same finished trials whatever the timing.
"""

from __future__ import annotations

import copy
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


class Lagged(Searcher):  # type: ignore[misc]
    """``searcher`` told of its trials in the order it suggested them, and each suggestion made
    once exactly the trials ``lag`` or more places before it have been told: the ``i``-th
    suggestion sees the results of trials ``0 .. i - lag`` and the others as running, whatever
    order they end in, so a search replays from its seed (``--reproducible``). A result that
    ends early waits for its turn to be told; a suggestion waits (Tune asks again) only while a
    trial ``lag`` places back is still running. With ``lag`` at twice the trials that run at
    once, that is rare, where batches (Ray Tune's ``ConcurrencyLimiter(batch=True)``) wait for
    the slowest trial of every batch. Once all ``total`` trials are suggested, results are
    told as they come: nothing is sampled after them."""

    def __init__(self, searcher: Searcher, lag: int, total: int) -> None:
        if lag < 1:
            raise ValueError("lag must be at least 1")
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher, self.lag, self.total = searcher, lag, total
        self.order: list[str] = []  # trial ids, in the order they were suggested
        self.held: dict[str, tuple[dict[str, Any] | None, bool]] = {}  # ended, not told yet
        self.told = 0  # how many of ``order`` (a prefix) the searcher has been told of

    def suggest(self, trial_id: str) -> dict[str, Any] | None:  # or Searcher.FINISHED
        if len(self.order) >= self.total:
            return Searcher.FINISHED  # type: ignore[return-value]
        if not self._tell_until(len(self.order) - self.lag + 1):
            return None  # a trial lag places back is still running
        config = self.searcher.suggest(trial_id)
        if config is not None and config != Searcher.FINISHED:
            self.order.append(trial_id)
        return config  # type: ignore[no-any-return]

    def _tell_until(self, count: int) -> bool:
        """Tell the searcher of the first ``count`` suggested trials, in order; whether all of
        them have ended."""
        while self.told < count:
            trial_id = self.order[self.told]
            if trial_id not in self.held:
                return False
            result, error = self.held.pop(trial_id)
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
            self.told += 1
        return True

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.held[trial_id] = (result, error)
        if len(self.order) >= self.total:  # nothing is sampled any more: tell what has ended
            for ended in list(self.held):
                result, error = self.held.pop(ended)
                self.searcher.on_trial_complete(ended, result=result, error=error)

    # a wrapper as Tune saves one (like its ConcurrencyLimiter): its own state apart, the
    # searcher it wraps saved by Tune as the base
    def get_state(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "searcher"}
        return copy.deepcopy(state)

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)

