"""Payoff cells of a duel: one attacker strategy against one defender strategy, for one seed.

A cell is scored by :func:`arena.evaluate.evaluate_cell` and cached as JSON under the content
hash of everything that defines it (both strategies, the data, the architecture, the gates and
the seed), so a cell is computed once per cache, whichever trial, round or node asks first.
Models and the detectors' verdicts on the clean model are cached under their own keys, so a
defender's trial never retrains a BadNet.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from arena.cache import DEFAULT_CACHE, ArtifactCache, content_key
from arena.data import Splits
from arena.evaluate import DataRef, Gates, evaluate_cell
from arena.models import DEFAULT_MODEL
from studies.players import AttackerStrategy, DefenderStrategy

METRICS = ("ca", "asr", "sda", "sasr", "far", "frr")


@dataclass(frozen=True)
class Setting:
    """What every cell of a duel shares. ``device`` (``cpu`` or ``cuda``) is where its workers
    train and infer; like the cache, it is not part of what a cell is (:meth:`describe`)."""

    data: DataRef = DataRef()
    model: str = DEFAULT_MODEL
    gates: Gates = Gates()
    cache_url: str = DEFAULT_CACHE
    device: str = "cpu"

    def describe(self) -> dict[str, Any]:
        return {"data": asdict(self.data), "model": self.model, "gates": asdict(self.gates)}


@dataclass
class Cell:
    """A scored cell: the CLI's ``--json`` record of :class:`arena.evaluate.CellResult`, how many
    models this call trained, and whether the whole cell came from the cache."""

    result: dict[str, Any]
    trained: int = 0
    cached: bool = False

    @property
    def payoff(self) -> float:
        return float(self.result["payoff"])


@dataclass
class Tally:
    """Work done, summed over cells: models trained, cells computed, cells read from the cache,
    and Ray tasks run per node id."""

    trained: int = 0
    computed: int = 0
    cache_hits: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)

    def add(self, cell: Cell) -> None:
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


@functools.lru_cache(maxsize=4)
def load_data(ref: DataRef) -> Splits:
    """The dataset, loaded once per process (Ray reuses its worker processes across trials)."""
    return ref.load()


def cell_key(
    attacker: AttackerStrategy, defender: DefenderStrategy, seed: int, setting: Setting
) -> str:
    spec = {
        "attacker": attacker.describe(),
        "defender": defender.describe(),
        "seed": seed,
        **setting.describe(),
    }
    return content_key("cell", spec)


def cached_cell(
    attacker: AttackerStrategy,
    defender: DefenderStrategy,
    seed: int,
    setting: Setting,
    cache: ArtifactCache,
) -> Cell | None:
    hit = cache.load_json("cell", cell_key(attacker, defender, seed, setting))
    return None if hit is None else Cell(hit, cached=True)


def play(
    attacker: AttackerStrategy,
    defender: DefenderStrategy,
    seed: int,
    setting: Setting,
    cache: ArtifactCache | None = None,
) -> Cell:
    """The cell from the cache, or evaluated now and cached."""
    cache = cache or ArtifactCache(setting.cache_url)
    hit = cached_cell(attacker, defender, seed, setting, cache)
    if hit is not None:
        return hit
    data = load_data(setting.data)
    result = evaluate_cell(
        attacker.build(image_shape=data.image_shape, num_classes=data.num_classes, cache=cache),
        defender.build(seed=seed, cache=cache),
        data=data,
        data_ref=setting.data,
        model_name=setting.model,
        recipe=attacker.recipe,
        seed=seed,
        cache=cache,
        gates=setting.gates,
        skip_rejected=True,
    ).to_json()
    trained = sum(not hit for hit in result["gates"]["cached"].values())
    cache.save_json("cell", cell_key(attacker, defender, seed, setting), result)
    return Cell(result, trained=trained)


def play_row(
    attacker: AttackerStrategy,
    defenders: Sequence[DefenderStrategy],
    seeds: Sequence[int],
    setting: Setting,
) -> list[list[Cell]]:
    """``cells[j][s]``: the attacker against each defender for each seed, in one process, so
    the attacker's BadNet is trained at most once per seed."""
    cache = ArtifactCache(setting.cache_url)
    return [[play(attacker, d, s, setting, cache) for s in seeds] for d in defenders]


def mean_payoff(cells: Sequence[Cell]) -> float:
    """A cell's payoff averaged over seeds (DESIGN.md: ``u(a, d)``)."""
    return sum(c.payoff for c in cells) / len(cells)


def gate_margins(cell: Cell) -> tuple[float, float]:
    """How far a cell is inside (< 0) or past (> 0) each gate: the user's (the BadNet's clean
    accuracy drop over ``delta_attack``) and the defender's (the largest of its accuracy cost
    over ``delta_defense``, its clean rejections over ``frr_budget``, and +1 when it flags the
    clean model, -1 when it does not)."""
    r, g = cell.result, cell.result["gates"]
    user = g["clean_ca"] - r["ca"] - g["delta_attack"]
    if r["sda"] is None:  # the user's gate fired first; the defense never ran
        return user, -1.0
    flag = bool(r["detection"].get("clean"))
    defense = max(r["ca"] - r["sda"] - g["delta_defense"], r["frr"] - g["frr_budget"])
    return user, max(defense, 1.0 if flag else -1.0)
