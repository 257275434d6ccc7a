"""A trial as Ray Tune runs it: a light actor that hands the work to a pooled Ray task.

Tune starts its trial actors afresh for every study and ends them with it, and an actor that
scores cells itself pays for importing torch, the strategies and the cells (2-3 CPU seconds),
and for warming torch's kernels, in every study of a duel. So the actor does no work: it asks
for a hundredth of a CPU (:data:`arena.cell.runner.TRIAL_ACTOR_CPU`), sends the trial to one
Ray task (the trial's CPUs and GPU share, :meth:`arena.cell.runner.Resources.for_trial_task`)
outside the trial's placement group, whose workers Ray would end with it, and reports what the
task returns. Ray keeps the processes that ran tasks for the next ones, so the studies, the
payoff matrix and the interval of a duel share a few warm workers that import everything once
(bench/README.md, "Warm workers").

This module imports nothing heavy at its top: the actor imports it to run :func:`run_trial`;
the task imports the scoring (``studies/scoring.py``) when it runs.
"""

from __future__ import annotations

from typing import Any

STUDY_KEY = "__study"
"""The config key that says which of the ``Tuner``'s studies a trial belongs to (an index into
its jobs; absent: the only one)."""


def score_task(params: dict[str, Any], job: Any) -> tuple[str, dict[str, Any]]:
    """The Ray task of a trial: the node it ran on and the trial's result
    (:func:`studies.scoring.score_trial`)."""
    from arena.cell.runner import prepare_worker
    from studies import scoring

    node = prepare_worker(job.setting)
    return node, scoring.score_trial(params, job)


def run_trial(config: dict[str, Any], task: Any, job: tuple[Any, ...]) -> None:
    """The Ray Tune trainable: ``task`` (:func:`score_task` made remote, with the trial's
    resources) on ``config`` and its study's job (object references, one per study of the
    ``Tuner``, in a tuple so that the actor never fetches them; :data:`STUDY_KEY` picks one),
    reported once."""
    import ray
    from ray import tune

    params = {k: v for k, v in config.items() if k != STUDY_KEY}
    node, result = ray.get(task.remote(params, job[config.get(STUDY_KEY, 0)]))
    tune.report({**result, "node": node})
