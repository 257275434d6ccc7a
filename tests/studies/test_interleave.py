"""Several studies' searchers behind one Tune searcher: turns, tags, routing."""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher

from studies.interleave import Interleave
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
