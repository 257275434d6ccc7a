"""Scoring a cell, and cells cached by content key.

:func:`score_cell` trains (or loads from the cache) the clean reference model and the BadNet,
fits the defense on the BadNet with the defender's clean validation data (and on the clean
model, for detectors, to catch false alarms), and scores the result by the payoff rules
(:mod:`arena.cell.rules`).

:func:`play` caches the whole cell as JSON under the content hash of everything that defines it
(both strategies, the data, the architecture, the gates and the seed), so a cell is computed
once per cache, whichever trial, round or node asks first. Models and the detectors' verdicts
on the clean model are cached under their own keys (:mod:`arena.cell.artifacts`), and so are
the fitted defenses (:mod:`strategies.defenses.fits`); a cell records the keys of all it used
(:func:`score_cell`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from arena.cell.artifacts import clean_verdict, train_model
from arena.cell.pruning import monitor
from arena.cell.result import CellResult, Detection, GateRecord
from arena.cell.rules import VERSION as RULES_VERSION
from arena.cell.rules import Ruling, best_trigger, measure_each, score, user_rejects
from arena.cell.setting import Setting
from arena.core.cache import ArtifactCache, content_key
from arena.core.infer import accuracy
from arena.core.train import TrainConfig, training_bytes
from arena.data import Split, Splits
from arena.data.common import available_memory
from arena.models import build_model
from strategies.defenses import Deployment
from strategies.players import AttackerStrategy, DefenderStrategy

MIN_IMAGES_PER_CLASS = 2
"""A cell needs this many images of every class in each split: the BadNet learns every class,
the defender calibrates on every class, and attack success is measured on test images of every
class the trigger moves."""


class CellNotMeasurable(ValueError):
    """The data cannot give a cell a meaning (too few images of some class in some split, or
    no test image that the attack's trigger should move)."""


def check_measurable(data: Splits) -> None:
    """Fail, in one line that says how many images of which class are missing where, unless
    every split holds at least :data:`MIN_IMAGES_PER_CLASS` images of every class."""
    for split_name in ("train", "val", "test"):
        split = getattr(data, split_name)
        counts = torch.bincount(split.y, minlength=data.num_classes)
        fewest = int(counts.argmin())
        if int(counts[fewest]) < MIN_IMAGES_PER_CLASS:
            raise CellNotMeasurable(
                f"{data.name}'s {split_name} split has {int(counts[fewest])} image(s) of class "
                f"{fewest}; a cell needs at least {MIN_IMAGES_PER_CLASS} of every class in each "
                f"split ({MIN_IMAGES_PER_CLASS * data.num_classes} per split for "
                f"{data.num_classes} classes): raise --limit or add images"
            )


def check_memory_for_training(setting: Setting, batch_size: int) -> None:
    """Fail, in one line, when training the setting's network on its images in batches of
    ``batch_size`` would take more than half of the memory available now
    (:func:`arena.core.train.training_bytes`, counted on the ``meta`` device)."""
    data = setting.splits()
    batch_size = min(batch_size, len(data.train))  # as the training loop takes it
    with torch.device("meta"):  # shapes only: nothing is allocated
        net = build_model(setting.model, data.image_shape, data.num_classes)
    need = training_bytes(net, data.image_shape, batch_size)
    free = available_memory()
    if free is not None and need > free // 2:
        c, h, w = data.image_shape
        raise ValueError(
            f"training {setting.model} on {c}x{h}x{w} images in batches of {batch_size} takes "
            f"about {need / 2**30:.1f} GiB, more than half of the {free / 2**30:.1f} GiB of "
            "memory available; lower --image-size or -T batch_size, or pick a smaller --model"
        )


class _Clock:
    """Wall seconds and this process's CPU seconds (every thread's) of each phase of a cell."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)
            self.cpu[name] = round(time.process_time() - cpu, 3)


def _score(
    attacker: AttackerStrategy,
    defender: DefenderStrategy,
    seed: int,
    setting: Setting,
    cache: ArtifactCache,
    *,
    skip_rejected: bool = False,
) -> CellResult:
    """Score ``attacker`` against ``defender`` on ``setting`` for one seed (:func:`score_cell`).

    With ``skip_rejected``, a BadNet that the user's gate rejects is scored 0 without running
    the defense (its defense metrics are then ``None``): the duel's searches meet many such
    recipes, and the defense cannot change their payoff."""
    data = setting.splits()
    attack = attacker.build(image_shape=data.image_shape, num_classes=data.num_classes, cache=cache)
    defense = defender.build(seed=seed, cache=cache)
    clock = _Clock()
    test = data.test
    with clock.phase("clean_model"):
        clean = train_model(setting, seed, cache, recipe=TrainConfig())
        clean_ca = accuracy(clean.model, test.x, test.y)

    def poisoned() -> dict[str, Split]:
        return attack.poisoned_tests(test, torch.Generator().manual_seed(seed + 1))

    # inside a trial that watches BadNets learn (and may stop one that cannot pass the gate)
    watched = monitor(
        test, None if attack.trains_with_badnet else poisoned, clean_ca, setting.gates.delta_attack
    )
    with clock.phase("badnet"):
        bad = train_model(
            setting, seed, cache, recipe=attacker.recipe, attack=attack, monitor=watched
        )
    sets = poisoned()
    if not any(len(s) for s in sets.values()):
        raise CellNotMeasurable(
            f"{attacker.family} moves no test image of {data.name} to a target (no test image "
            "of a class its mapping moves), so its attack success cannot be measured"
        )
    names = list(sets)
    ca = accuracy(bad.model, test.x, test.y)
    gates = setting.gates
    rejected = user_rejects(clean_ca, ca, gates) if skip_rejected else None
    deployed: Deployment | None = None
    clean_flagged = None
    if rejected:
        # the user's gate decides the cell before any defense runs: the BadNet is never deployed
        asrs = [accuracy(bad.model, s.x, s.y) if len(s) else None for s in sets.values()]
        ruling = Ruling(0.0, "user", [f"{rejected}; the defense was not run"])
        result = CellResult(
            ca=ca,
            asr=max(a for a in asrs if a is not None),  # every trigger scores 0: the strongest
            sda=None,
            sasr=None,
            far=None,
            frr=None,
            detection=Detection(),
            payoff=ruling.payoff,
            gates=_gates(ruling, clean_ca, bad.header, clean.cached, bad.cached, setting),
            triggers=names,
            asr_per_trigger=asrs,
            sasr_per_trigger=[None] * len(names),
            far_per_trigger=[None] * len(names),
        )
    else:
        with clock.phase("defense"):
            deployed = defense.fit(bad.model, data.val)
        if defense.kind == "detector":
            with clock.phase("defense_clean"):
                clean_flagged = clean_verdict(defense, clean, data.val, cache)
        with clock.phase("metrics"):
            each = measure_each(bad.model, deployed, test, sets)
        scored = {
            name: (m, score(m, clean_ca=clean_ca, flagged=deployed.flagged,
                            clean_flagged=clean_flagged, gates=gates))
            for name, m in each.items()
            if m is not None
        }  # fmt: skip
        metrics, ruling = scored[best_trigger(scored)]
        result = CellResult.of(
            metrics,
            ruling,
            detection=Detection.of(
                deployed.flagged,
                clean_flagged,
                deployed.details,
                named=deployed.named,
                targets=attack.target_labels(),
            ),
            gates=_gates(ruling, clean_ca, bad.header, clean.cached, bad.cached, setting),
        )
        result.triggers = names
        result.asr_per_trigger = [None if m is None else m.asr for m in each.values()]
        result.sasr_per_trigger = [None if m is None else m.sasr for m in each.values()]
        result.far_per_trigger = [None if m is None else m.far for m in each.values()]
    clock.seconds["total"] = round(sum(clock.seconds.values()), 3)
    clock.cpu["total"] = round(sum(clock.cpu.values()), 3)
    result.seconds = clock.seconds
    result.cpu_seconds = clock.cpu
    result.trained = int(not clean.cached) + int(not bad.cached)
    return result


def score_cell(
    attacker: AttackerStrategy,
    defender: DefenderStrategy,
    seed: int,
    setting: Setting,
    cache: ArtifactCache,
    *,
    skip_rejected: bool = False,
) -> CellResult:
    """Score ``attacker`` against ``defender`` on ``setting`` for one seed, with every cache
    entry it read or wrote (the models, the fits, the verdicts and the trained parts) in the
    result's ``artifacts``, by kind. With ``skip_rejected``, a BadNet that the user's gate
    rejects is scored 0 without running the defense (see :func:`_score`)."""
    with cache.recording() as used:
        result = _score(attacker, defender, seed, setting, cache, skip_rejected=skip_rejected)
    result.artifacts = {kind: sorted(keys) for kind, keys in sorted(used.items())}
    return result


def _gates(
    ruling: Ruling,
    clean_ca: float,
    header: dict[str, object],
    clean_cached: bool,
    bad_cached: bool,
    setting: Setting,
) -> GateRecord:
    return GateRecord.of(
        ruling,
        clean_ca=clean_ca,
        badnet_status=str(header.get("status", "ok")),
        cached={"clean_model": clean_cached, "badnet": bad_cached},
        gates=setting.gates,
    )


def evaluate(
    attacker: AttackerStrategy,
    defender: DefenderStrategy,
    setting: Setting = Setting(),
    *,
    seed: int = 0,
    cache: ArtifactCache | None = None,
) -> CellResult:
    """One cell as ``arena evaluate`` scores it: the data loaded (and timed) first, the defense
    run even on a BadNet the user's gate rejects, the cell itself not cached."""
    start, cpu = time.perf_counter(), time.process_time()
    check_measurable(setting.splits())
    check_memory_for_training(setting, max(attacker.recipe.batch_size, TrainConfig().batch_size))
    data_seconds, data_cpu = time.perf_counter() - start, time.process_time() - cpu
    result = score_cell(
        attacker, defender, seed, setting, cache or ArtifactCache(setting.cache_url)
    )
    result.seconds = {"data": round(data_seconds, 3), **result.seconds}
    result.seconds["total"] = round(time.perf_counter() - start, 3)
    result.cpu_seconds = {"data": round(data_cpu, 3), **result.cpu_seconds}
    result.cpu_seconds["total"] = round(time.process_time() - cpu, 3)
    return result


@dataclass
class Tally:
    """Work done, summed over cells: models trained, cells computed, cells read from the cache,
    and Ray tasks run per node id."""

    trained: int = 0
    computed: int = 0
    cache_hits: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)

    def add(self, cell: CellResult) -> None:
        self.trained += cell.trained
        if cell.cached:
            self.cache_hits += 1
        else:
            self.computed += 1

    def merge(self, other: Tally) -> None:
        self.trained += other.trained
        self.computed += other.computed
        self.cache_hits += other.cache_hits
        for node, n in other.nodes.items():
            self.nodes[node] = self.nodes.get(node, 0) + n


def cell_key(
    attacker: AttackerStrategy, defender: DefenderStrategy, seed: int, setting: Setting
) -> str:
    spec = {
        "attacker": attacker.describe(),
        "defender": defender.describe(),
        "seed": seed,
        **setting.describe(),
        "rules": RULES_VERSION,
    }
    return content_key("cell", spec)


def cached_cell(
    attacker: AttackerStrategy,
    defender: DefenderStrategy,
    seed: int,
    setting: Setting,
    cache: ArtifactCache,
) -> CellResult | None:
    hit = cache.load_json("cell", cell_key(attacker, defender, seed, setting))
    return None if hit is None else CellResult.from_json(hit, cached=True)


def play(
    attacker: AttackerStrategy,
    defender: DefenderStrategy,
    seed: int,
    setting: Setting,
    cache: ArtifactCache | None = None,
) -> CellResult:
    """The cell from the cache, or scored now (the user's gate skipping the defense) and
    cached."""
    cache = cache or ArtifactCache(setting.cache_url)
    hit = cached_cell(attacker, defender, seed, setting, cache)
    if hit is not None:
        return hit
    result = score_cell(attacker, defender, seed, setting, cache, skip_rejected=True)
    cache.save_json("cell", cell_key(attacker, defender, seed, setting), result.to_json())
    return result


def play_row(
    attacker: AttackerStrategy,
    defenders: Sequence[DefenderStrategy],
    seeds: Sequence[int],
    setting: Setting,
) -> list[list[CellResult]]:
    """``cells[j][s]``: the attacker against each defender for each seed, in one process, so
    the attacker's BadNet is trained at most once per seed."""
    cache = ArtifactCache(setting.cache_url)
    return [[play(attacker, d, s, setting, cache) for s in seeds] for d in defenders]


def mean_payoff(cells: Sequence[CellResult]) -> float:
    """A cell's payoff averaged over seeds (DESIGN.md: ``u(a, d)``)."""
    return sum(c.payoff for c in cells) / len(cells)
