"""Searchers around the studies' own: Interleave's turns and routing, Lagged's order."""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher

from studies.searchers import Interleave, Lagged
from studies.trial import STUDY_KEY


class Fake(Searcher):  # type: ignore[misc]
    def __init__(self, name: str, waits: int = 0) -> None:
        super().__init__(metric="objective", mode="max")
        self.name, self.waits = name, waits
        self.asked: list[str] = []
        self.told: list[tuple[str, Any, bool]] = []

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.waits:  # nothing to give yet (a searcher waiting on results)
            self.waits -= 1
            return None
        self.asked.append(trial_id)
        return {"x": f"{self.name}{len(self.asked)}"}

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.told.append((trial_id, result, error))


def test_turns_follow_the_counts_and_tag_each_config() -> None:
    a, d = Fake("a"), Fake("d")
    both = Interleave([a, d], [3, 1])
    configs = [both.suggest(f"t{i}") for i in range(5)]
    assert [c and c["x"] for c in configs[:4]] == ["a1", "d1", "a2", "a3"]
    assert [c and c[STUDY_KEY] for c in configs[:4]] == [0, 1, 0, 0]
    assert configs[4] == Searcher.FINISHED  # every study has its trials


def test_each_result_goes_back_to_its_own_searcher() -> None:
    a, d = Fake("a"), Fake("d")
    both = Interleave([a, d], [1, 1])
    both.suggest("t0")
    both.suggest("t1")
    both.on_trial_complete("t1", result={"objective": 0.2})
    both.on_trial_complete("t0", error=True)
    assert d.told == [("t1", {"objective": 0.2}, False)]
    assert a.told == [("t0", None, True)]
    both.on_trial_complete("unknown", result={})  # a trial it never suggested: ignored


def test_a_waiting_searcher_lets_the_other_take_its_turn() -> None:
    a, d = Fake("a", waits=1), Fake("d")
    both = Interleave([a, d], [1, 2])
    first = both.suggest("t0")
    assert first is not None and first[STUDY_KEY] == 1  # a had nothing yet
    second = both.suggest("t1")
    assert second is not None and second["x"] == "a1"
    assert both.suggest("t2") is not None
    assert both.suggest("t3") == Searcher.FINISHED


def test_it_waits_while_every_study_with_trials_left_waits() -> None:
    a = Fake("a", waits=2)
    both = Interleave([a, Fake("d")], [1, 0])
    assert both.suggest("t0") is None
    assert both.suggest("t1") is None
    assert both.suggest("t2") is not None


class Saving(Fake):
    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as f:
            f.write(",".join(self.asked))

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            self.asked = f.read().split(",")


def test_save_and_restore_keep_the_turns_and_each_searchers_state(tmp_path: Any) -> None:
    both = Interleave([Saving("a"), Saving("d")], [2, 2])
    both.suggest("t0")
    path = str(tmp_path / "state.pkl")
    both.save(path)
    again = Interleave([Saving("a"), Saving("d")], [2, 2])
    again.restore(path)
    assert again.left == [1, 2] and again.owner == {"t0": 0} and again.turn == 1
    assert again.searchers[0].asked == ["t0"]
    nxt = again.suggest("t1")
    assert nxt is not None and nxt[STUDY_KEY] == 1


class Recording(Fake):
    """Records, at each suggestion, which trials it had been told of."""

    def __init__(self) -> None:
        super().__init__("s")
        self.seen: list[list[str]] = []

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        self.seen.append([t for t, _, _ in self.told])
        return super().suggest(trial_id)


def test_lagged_suggests_from_the_same_told_trials_whatever_order_they_end_in() -> None:
    runs = []
    for ending in (["t0", "t1", "t2", "t3"], ["t1", "t0", "t3", "t2"]):
        inner = Recording()
        lagged = Lagged(inner, lag=2, total=5)
        assert lagged.suggest("t0") is not None and lagged.suggest("t1") is not None
        for i, done in enumerate(ending):
            lagged.on_trial_complete(done, result={"objective": float(done[1])})
            # the next trial (t2, t3, ...) waits until the trial two places back is told
            nxt = f"t{len(lagged.order)}"
            while len(lagged.order) < min(5, i + 3) and lagged.suggest(nxt) is not None:
                nxt = f"t{len(lagged.order)}"
        runs.append(inner.seen)
    assert runs[0] == runs[1] == [[], [], ["t0"], ["t0", "t1"], ["t0", "t1", "t2"]]


def test_lagged_waits_while_the_trial_lag_places_back_runs() -> None:
    lagged = Lagged(Recording(), lag=2, total=4)
    lagged.suggest("t0")
    lagged.suggest("t1")
    lagged.on_trial_complete("t1", result={"objective": 1.0})  # ends first: held back
    assert lagged.suggest("t2") is None and lagged.searcher.told == []
    lagged.on_trial_complete("t0", result={"objective": 0.0})
    assert lagged.suggest("t2") is not None
    assert [t for t, _, _ in lagged.searcher.told] == ["t0"]  # t1 still held


def test_lagged_tells_everything_once_all_trials_are_suggested() -> None:
    inner = Recording()
    lagged = Lagged(inner, lag=3, total=2)
    lagged.suggest("t0")
    lagged.suggest("t1")
    assert lagged.suggest("t2") == Searcher.FINISHED
    lagged.on_trial_complete("t1", result={"objective": 1.0})
    lagged.on_trial_complete("t0", error=True)
    assert inner.told == [("t1", {"objective": 1.0}, False), ("t0", None, True)]


def test_lagged_saves_as_tunes_wrappers_do(tmp_path: Any) -> None:
    """Tune saves a wrapper's ``get_state`` and the searcher it wraps apart (SearchGenerator)."""
    from ray.tune.search import SearchGenerator

    inner = Saving("a")
    lagged = Lagged(Interleave([inner, Saving("d")], [2, 2]), lag=2, total=4)
    lagged.suggest("t0")
    lagged.on_trial_complete("t0", result={"objective": 1.0})
    SearchGenerator(lagged).save_to_dir(str(tmp_path), session_str="s")
    again = Lagged(Interleave([Saving("a"), Saving("d")], [2, 2]), lag=2, total=4)
    again.set_state(lagged.get_state())
    assert again.order == ["t0"] and again.held == {"t0": ({"objective": 1.0}, False)}


def _search(lag: int | None, newest_first: bool) -> list[float]:
    """Twelve trials of a seeded TPE through Tune's OptunaSearch, two at a time, each ended
    the moment the next can start, oldest first or newest first; the parameters asked."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def space(trial: Any) -> None:
        trial.suggest_float("x", -2.0, 2.0)

    sampler = optuna.samplers.TPESampler(seed=3, n_startup_trials=2, constant_liar=True)
    searcher: Searcher = OptunaSearch(space=space, metric="objective", mode="min", sampler=sampler)
    if lag is not None:
        searcher = Lagged(searcher, lag=lag, total=12)
    asked: list[float] = []
    running: list[tuple[str, float]] = []
    while len(asked) < 12 or running:
        config = searcher.suggest(f"t{len(asked)}") if len(asked) < 12 else None
        if config is not None and config != Searcher.FINISHED:
            running.append((f"t{len(asked)}", config["x"]))
            asked.append(config["x"])
            if len(running) < 2:
                continue
        trial_id, x = running.pop(-1 if newest_first else 0)
        searcher.on_trial_complete(trial_id, result={"objective": x})
    return asked


def test_lagged_makes_a_tpe_search_the_same_whatever_order_trials_end_in() -> None:
    assert _search(4, newest_first=False) == _search(4, newest_first=True)
    # without it the order the trials end in changes what TPE samples
    assert _search(None, newest_first=False) != _search(None, newest_first=True)
