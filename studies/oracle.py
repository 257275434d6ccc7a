"""The best-response oracle: one Optuna study per side and round, its trials run by Ray Tune.

Each call runs a ``Tuner`` over :func:`studies.trial.run_trial` with
``OptunaSearch(define-by-run space, study_name=..., storage=...)``; each trial's actor hands its
work to a Ray task on a pooled, warm worker (``studies/trial.py``). A duel asks both sides of a
round at once (:func:`respond_together`): one ``Tuner`` runs both studies' trials, each study
keeping its own searcher (``studies/searchers.py``). A trial plays one strategy
against every opponent strategy in the support of the opponent's mix (for every seed of the
duel) and reports the mix-weighted payoff as ``objective``, with the papers' metrics. On the
Optuna trial, the metrics become user attributes and both gates' margins become
``constraints`` (positive: the gate fired), so the dashboard shows them next to each payoff.

Warm start: a new study is seeded with ``enqueue_trial`` of every strategy the side already
plays, so each round's search starts from what earlier rounds found; then half of its new
trials are enqueued with part of their parameters fixed to the side's *anchors* (for the
attacker, the training recipes it already uses, so those trials search the trigger and the
poisoning on a recipe known to give a deployable BadNet), the sampler choosing the rest.

The answer is read back from the storage (the best complete trial), so a finished study
answers again without running anything, and a study cut short continues where it stopped
(``resume``): trials that were running when the run stopped are marked failed and enqueued
again, finished ones are kept. That is safe only because no other driver runs them: a duel runs
under its lease (``studies/lease.py``), which a resumed run takes over only once the driver that
held it has stopped.

Faults: a trial whose worker dies (a node lost, the process killed) is run again by Tune, up to
``Compute.max_failures`` times, with the same parameters; the searcher hears of the trial only
when it ends, so the Optuna trial stays RUNNING meanwhile and is told once. Each trial records
the node it ran on (user attribute ``node``).

Pruning (``prune``, attacker studies of a duel): a trial whose BadNet cannot pass the user's
gate stops early (:mod:`arena.cell.pruning`) and is told to its study as pruned, with the
BadNet's learning curve as its intermediate values; every attacker trial records its curve. A
pruned trial is never a study's answer (:func:`best_trial` reads complete trials only), so it
never enters the payoff matrix.

The audit (``arena/duels/audit.py``) uses the same oracle with another sampler (:data:`SAMPLERS`),
a study name of its own and no warm start, so its search is independent of the duel's.
"""

from __future__ import annotations

import logging
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from arena.cell.play import Tally
from arena.cell.pruning import GateRule
from arena.cell.rules import METRICS
from arena.cell.runner import (
    TRIAL_ACTOR_CPU,
    Compute,
    cluster_info,
    ensure_ray,
    plan_resources,
)
from arena.cell.setting import Setting
from arena.game import Response
from studies.events import TrialEvent
from studies.scoring import Space, TrialJob
from studies.storage import open_storage, study_name
from studies.trial import run_trial, score_task

log = logging.getLogger(__name__)

SUPPORT = 1e-9  # mixes' weights at or below this are not played against
METRIC_NAME = "post-defense attack success"
LAG_PER_SLOT = 2
"""With ``lockstep`` (``--reproducible``), a trial is sampled once the trials at least this many
times the concurrent trials before it have been told (:class:`studies.searchers.Lagged`)."""
SAMPLERS = ("tpe", "qmc", "random")
"""The Optuna samplers an oracle may search with: TPE (the duel's oracles), scrambled Sobol
quasi-Monte Carlo and uniform random (the audit's, independent of TPE's model)."""


def best_trial(study: optuna.Study, direction: str) -> optuna.trial.FrozenTrial | None:
    """The study's best complete trial by its value alone (the first of equals): the gates are
    already in the payoff, and Optuna's own ``best_trial`` would skip every trial whose
    recorded constraints say a gate fired. ``None`` if none is complete."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    pick = max if direction == "maximize" else min
    return pick(sorted(complete, key=lambda t: t.number), key=lambda t: float(t.value or 0.0))


class StudyUnanswered(ValueError):
    """Every trial of a study was pruned or failed: it has no answer to give."""


class DuelInterrupted(RuntimeError):
    """A duel's study exists unfinished and the run was not asked to resume it."""


USER_ATTRS = (
    "strategy",
    *METRICS,
    "flagged",
    "clean_flagged",
    "payoffs",
    "trained",
    "inner_seconds",
    "node",
    "curve",
    "gate_threshold",
    "pruned",
)


def _searcher_class() -> type:
    from ray.tune.search.optuna import OptunaSearch

    class RecordingOptunaSearch(OptunaSearch):  # type: ignore[misc]
        """``OptunaSearch`` that also stores each trial's metrics, gate margins and learning
        curve. A result whose ``objective`` is ``None`` (a trial stopped by the pruning rule) is
        told to the study as pruned, by ``OptunaSearch`` itself."""

        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            """Nothing: a trial reports once, at its end, where its curve becomes the
            study's intermediate values (``OptunaSearch`` would report the objective as step 1)."""

        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            ot_trial = self._ot_trials.get(trial_id)
            if result and ot_trial is not None and not error:
                # the BadNet's clean accuracy after each epoch: the study's intermediate values
                # (a pruned trial's, the reason it was stopped), as the dashboard plots them
                for epoch, ca, _ in result.get("curve") or ():
                    ot_trial.report(float(ca), int(epoch))
                for key in USER_ATTRS:
                    if key in result:
                        ot_trial.set_user_attr(key, result[key])
                if "constraints" in result and self._storage is not None:
                    # where Optuna's own samplers keep constraints, which the dashboard shows
                    self._storage.set_trial_system_attr(
                        ot_trial._trial_id, "constraints", list(result["constraints"])
                    )
            super().on_trial_complete(trial_id, result, error)

    return RecordingOptunaSearch


def rerun_params(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """What a trial cut off by an interruption is run again with: the parameters it was
    enqueued with (a warm start, a partly fixed recipe) and those already sampled. A trial cut
    off while its parameters were being sampled never ran; the sampler completes it anew."""
    return {**trial.system_attrs.get("fixed_params", {}), **trial.params}


@dataclass
class TuneOracle:
    """A side's best-response oracle for one duel (see the module docstring)."""

    space: Space
    duel: str
    setting: Setting
    seeds: tuple[int, ...]
    trials: int
    storage_url: str
    tune_dir: str
    seed: int = 0
    resume: bool = False
    compute: Compute = Compute()
    on_trial: Callable[[TrialEvent], None] | None = None
    sampler: str = "tpe"
    warm_start: bool = True
    naming: Callable[[str, str, int], str] = study_name
    extend: bool = False  # a larger ``trials`` than a finished study planned continues it
    prune: GateRule | None = None  # the attacker's trials stop BadNets that cannot pass the gate
    lockstep: bool = False  # each trial sampled from a fixed set of told trials (Lagged)
    tally: Tally = field(default_factory=Tally)
    events: list[TrialEvent] = field(default_factory=list)
    tuner_seconds: list[float] = field(default_factory=list)

    def record(self, event: TrialEvent) -> None:
        """Number a finished trial's event in this oracle's order, tally it, pass it on."""
        event.number = len(self.events)
        self.events.append(event)
        self.tally.trained += event.trained
        self.tally.cache_hits += event.cache_hits
        if self.on_trial:
            self.on_trial(event)

    def __call__(
        self, round_: int, own: Sequence[Any], opponents: Sequence[Any], opponent_mix: np.ndarray
    ) -> Response[Any]:
        """This side's best response to ``opponent_mix``: its study of the round, run alone."""
        study = self.open(round_, own, opponents, opponent_mix)
        seconds = run_studies([study])
        if seconds is not None:
            self.tuner_seconds.append(seconds)
        return self.answer(study)

    def open(
        self, round_: int, own: Sequence[Any], opponents: Sequence[Any], opponent_mix: np.ndarray
    ) -> OpenStudy:
        """The round's study, created with its warm start or loaded, with what its trials need
        and how many are left to run (none for a finished one)."""
        name = self.naming(self.duel, self.space.side, round_)
        support = [
            (o, float(w)) for o, w in zip(opponents, opponent_mix, strict=True) if w > SUPPORT
        ]
        study, remaining = self._prepare(name, round_, own, support)
        job = TrialJob(
            self.space,
            tuple(o for o, _ in support),
            tuple(w for _, w in support),
            self.seeds,
            self.setting,
            self.prune if self.space.side == "attacker" else None,
        )
        return OpenStudy(self, name, round_, study, job, remaining)

    def answer(self, opened: OpenStudy) -> Response[Any]:
        """The study's best complete trial as this side's response (read from the storage)."""
        name, study = opened.name, opened.study
        best = best_trial(study, self.space.direction)
        if best is None:
            pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
            if pruned:  # the rest failed: the search found nothing it could score
                raise StudyUnanswered(
                    f"study {name} has no complete trial: {pruned} pruned, the rest failed (see "
                    "above); run the duel again with --no-prune and --name, or raise "
                    "--attacker-trials"
                )
            raise RuntimeError(f"study {name} has no complete trial; see the errors above")
        return Response(
            self.space.decode(best.params),
            float(best.value or 0.0),
            study=name,
            trials=len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))),
        )

    def searcher(self, opened: OpenStudy) -> Any:
        """Ray Tune's searcher over the study (its sampler, its storage)."""
        return _searcher_class()(
            space=self.space.define,
            metric="objective",
            mode="max" if self.space.direction == "maximize" else "min",
            sampler=self._sampler(opened.round, int(opened.study.user_attrs.get("warm_start", 1))),
            study_name=opened.name,
            storage=open_storage(self.storage_url),
        )

    def _sampler(self, round_: int, warm: int) -> optuna.samplers.BaseSampler:
        """The oracle's sampler (:data:`SAMPLERS`), seeded per duel, side and round. TPE's
        model starts from the warm-start trials (the strategies this side already plays)
        instead of random ones: most random training recipes make BadNets the user rejects, so
        a short search is better spent near what already works, widening from there as TPE's
        prior allows."""
        seed = zlib.crc32(f"{self.seed}/{self.space.side}/{round_}".encode())
        if self.sampler != "tpe":  # not TPE's seed: its first draws would repeat TPE's random ones
            seed = zlib.crc32(f"{self.seed}/{self.space.side}/{round_}/{self.sampler}".encode())
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; known: {', '.join(SAMPLERS)}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if self.sampler == "qmc":
                # parameters outside the space of the study's first trial (another family's
                # fields) are drawn by its independent sampler, seeded too
                return optuna.samplers.QMCSampler(
                    qmc_type="sobol",
                    scramble=True,
                    seed=seed,
                    independent_sampler=optuna.samplers.RandomSampler(seed=seed),
                    warn_independent_sampling=False,
                    warn_asynchronous_seeding=False,
                )
            if self.sampler == "random":
                return optuna.samplers.RandomSampler(seed=seed)
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=max(1, warm),
                multivariate=True,
                group=True,
                constant_liar=True,
            )

    def _prepare(
        self, name: str, round_: int, own: Sequence[Any], support: list[tuple[Any, float]]
    ) -> tuple[optuna.Study, int]:
        """The round's study, created with its warm start or loaded, and how many trials are
        left to run."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(self.storage_url)
        existing = {
            s.study_name: "planned_trials" in s.user_attrs for s in storage.get_all_studies()
        }
        if existing.get(name) is False:  # cut off while being prepared: no trial ever ran
            optuna.delete_study(study_name=name, storage=storage)
            del existing[name]
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=self.space.direction,
            sampler=self._sampler(round_, len(own)),
            load_if_exists=True,
        )
        if name not in existing:
            warm = [self.space.encode(s) for s in own] if self.warm_start else []
            study.set_user_attr("duel", self.duel)
            study.set_user_attr("side", self.space.side)
            study.set_user_attr("round", round_)
            study.set_user_attr("warm_start", len(warm))
            study.set_user_attr("sampler", self.sampler)
            study.set_user_attr(
                "opponents", [{"strategy": o.label, "weight": w} for o, w in support]
            )
            study.set_user_attr("objective", "post-defense attack success against the opponent mix")
            with warnings.catch_warnings():  # experimental in some Optuna versions
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # the dashboard's name for the objective (else "Objective 0")
                study.set_metric_names([METRIC_NAME])
            for params in warm:
                study.enqueue_trial(params)
            anchors = self.space.anchors(own)
            for i in range(self.trials // 2 if anchors else 0):
                # partly fixed trials: the sampler picks the rest (Optuna's partial enqueue)
                study.enqueue_trial(anchors[i % len(anchors)])
            # last: a study without it was cut off before it was ready, and is made again
            study.set_user_attr("planned_trials", len(warm) + self.trials)
        trials = study.get_trials(deepcopy=False)
        planned = int(study.user_attrs.get("planned_trials", self.trials))
        stale = [t for t in trials if t.state == TrialState.RUNNING]
        requeued = set(study.user_attrs.get("requeued", []))
        done = sum(
            t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and t.number not in requeued)
            for t in trials
        )
        remaining = max(0, planned - done)
        wanted = int(study.user_attrs.get("warm_start", 0)) + self.trials
        if self.extend and name in existing and wanted > planned and done >= planned:
            # a finished study asked for more trials: the search goes on from where it ended
            study.set_user_attr("planned_trials", wanted)
            planned, remaining = wanted, wanted - done
        elif name in existing and remaining > 0 and not self.resume:
            raise DuelInterrupted(
                f"study {name} stopped after {done} of {planned} trials; continue the duel with "
                "--resume, or start another with --name"
            )
        for t in stale:  # trials cut off by an interruption: run them again
            study.tell(t.number, state=TrialState.FAIL)
            study.enqueue_trial(rerun_params(t))
            requeued.add(t.number)
        if stale:
            study.set_user_attr("requeued", sorted(requeued))
        return study, remaining


@dataclass
class OpenStudy:
    """A side's study of a round, ready to run: its oracle, name and round, the Optuna study,
    what its trials need and how many trials it still has to run."""

    oracle: TuneOracle
    name: str
    round: int
    study: optuna.Study
    job: TrialJob
    remaining: int


def respond_together(
    attacker: TuneOracle, defender: TuneOracle
) -> Callable[[int, Sequence[Any], Sequence[Any], Any], tuple[Response[Any], Response[Any]]]:
    """Both sides' best responses of a round from one ``Tuner`` (the double oracle's
    ``respond``): the two studies answer the same restricted game, each its opponent's mix, so
    their trials interleave on the same trial actors, which start once a round instead of once
    a study, and each study's last trials run beside the other's instead of alone."""

    def respond(
        round_: int, attackers: Sequence[Any], defenders: Sequence[Any], eq: Any
    ) -> tuple[Response[Any], Response[Any]]:
        studies = [
            attacker.open(round_, attackers, defenders, eq.defender_mix),
            defender.open(round_, defenders, attackers, eq.attacker_mix),
        ]
        seconds = run_studies(studies)
        if seconds is not None:  # one Tuner for both: counted once
            attacker.tuner_seconds.append(seconds)
        return attacker.answer(studies[0]), defender.answer(studies[1])

    return respond


def run_studies(studies: Sequence[OpenStudy]) -> float | None:
    """Run the trials the ``studies`` have left with one ``Tuner``; its wall seconds (``None``
    if none had any left). Each study keeps its own searcher (its sampler, its Optuna study);
    with more than one, :class:`studies.searchers.Interleave` takes their turns and routes
    each result back to its study's searcher. The studies share the oracles' setting and
    compute."""
    studies = [s for s in studies if s.remaining > 0]
    if not studies:
        return None
    first = studies[0].oracle
    ensure_ray(first.compute.target)
    resources = plan_resources(first.compute, first.setting)
    n = sum(s.remaining for s in studies)
    # Tune keeps one trial pending at a time behind a custom searcher unless told how many
    # may run at once; then it starts as many actors together as the cluster holds
    concurrent = min(n, cluster_info().slots(resources))
    import ray
    from ray import tune
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from studies.searchers import Interleave, Lagged
    from studies.tune_progress import TrialProgress  # imports Ray Tune: only when trials run

    searchers = [s.oracle.searcher(s) for s in studies]
    search: Any = (
        searchers[0] if len(studies) == 1 else Interleave(searchers, [s.remaining for s in studies])
    )
    # the trial's actor asks for a hundredth of a CPU and waits; its task runs outside the
    # trial's placement group (whose workers Ray ends with it), on a pooled worker
    task = ray.remote(score_task).options(
        **resources.for_trial_task(),
        max_retries=0,  # a lost worker fails the trial, which Tune runs again
        # None: outside any placement group (Ray's documented escape; its hint says otherwise)
        scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=None),  # type: ignore[arg-type]
    )
    if any(s.oracle.lockstep for s in studies):
        # each ask sees the same finished trials (those LAG or more places back) and the same
        # running ones, whichever ends first: the search replays from its seed
        search = Lagged(search, lag=LAG_PER_SLOT * concurrent, total=n)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, task=task, job=tuple(ray.put(s.job) for s in studies)),
        {"cpu": TRIAL_ACTOR_CPU},
    )
    # one study: its direction; several: each searcher keeps its own, Tune's is unused
    mode = "min" if len(studies) == 1 and first.space.direction == "minimize" else "max"
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search,
            num_samples=n,
            max_concurrent_trials=concurrent,
            metric="objective",
            mode=mode,
            reuse_actors=True,
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name="+".join(s.name.replace("/", "_") for s in studies),
            storage_path=first.tune_dir,
            verbose=0,
            callbacks=[
                TrialProgress(
                    [(s.oracle.record, s.oracle.space.side, s.round, s.name) for s in studies]
                )
            ],
            # a trial whose worker died runs again with the same parameters; Optuna is
            # told only of its end, so the study holds it once
            failure_config=tune.FailureConfig(max_failures=first.compute.max_failures),
        ),
    )
    start = time.perf_counter()
    grid = tuner.fit()
    seconds = time.perf_counter() - start
    names = " and ".join(s.name for s in studies)
    errors = grid.errors
    if errors and len(errors) == len(grid):
        raise RuntimeError(f"every trial of {names} failed; first error: {errors[0]}")
    for error in errors:
        log.warning("a trial of %s failed: %s", names, str(error).splitlines()[0])
    for s in studies:
        finished = s.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        )
        planned = int(s.study.user_attrs.get("planned_trials", 0))
        if len(finished) - len(s.study.user_attrs.get("requeued", [])) < planned:
            raise KeyboardInterrupt  # Tune returns normally after Ctrl-C; pass the stop on
    return seconds
