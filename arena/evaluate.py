"""One cell of the game: an attack against a defense, scored by the payoff rules.

The cell trains (or loads from the cache) a clean reference model and the BadNet, fits the
defense on the BadNet with the defender's clean validation data (and on the clean model, for
detectors, to catch false alarms), and scores the result (DESIGN.md, "The game"):

* the user's gate: a BadNet whose clean accuracy is more than ``delta_attack`` below the clean
  model's is not deployed, ``payoff = 0``;
* the defender's gate: a defense that costs more than ``delta_defense`` of clean accuracy,
  rejects more than ``frr_budget`` of clean inputs, or flags the clean model scores as if no
  defense ran, ``payoff = asr``;
* otherwise a flagged BadNet is not deployed (``payoff = 0``), and an unflagged one scores the
  share of triggered inputs of non-target classes that pass the filter and reach their target
  after purification and repair (``sasr``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from arena.cache import ArtifactCache, content_key
from arena.data import Split, Splits, load_dataset
from arena.infer import accuracy
from arena.models import ArenaNet, build_model
from arena.params import config_to_dict
from arena.train import TrainConfig, train_classifier
from strategies import attack_class
from strategies.attacks import Attack
from strategies.defenses import Defense, Deployment, build_defense, parse_defenses

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gates:
    delta_attack: float = 0.03
    delta_defense: float = 0.05
    frr_budget: float = 0.05


@dataclass(frozen=True)
class DataRef:
    """How to load a dataset; also its identity in cache keys."""

    name: str = "digits"
    path: str | None = None
    image_size: int | None = None
    limit: int | None = None
    seed: int = 0

    def load(self) -> Splits:
        return load_dataset(
            self.name, path=self.path, seed=self.seed, image_size=self.image_size, limit=self.limit
        )


@dataclass
class CellResult:
    """A scored cell; :meth:`to_json` gives exactly the keys of the CLI's ``--json``."""

    ca: float
    asr: float
    sda: float | None  # None: the user's gate rejected the BadNet, so no defense ran
    sasr: float | None
    far: float | None
    frr: float | None
    detection: dict[str, Any]
    payoff: float
    gates: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Trained:
    model: ArenaNet
    header: dict[str, Any]
    cached: bool
    key: str = ""


class _Clock:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)


def train_model(
    data: Splits,
    data_ref: DataRef,
    model_name: str,
    recipe: TrainConfig,
    seed: int,
    cache: ArtifactCache,
    attack: Attack | None = None,
) -> Trained:
    """The clean model (``attack=None``) or the BadNet for these settings, from the cache or
    trained now and cached."""
    spec = {
        "data": asdict(data_ref),
        "arch": model_name,
        "train": config_to_dict(recipe),
        "seed": seed,
        "attack": None
        if attack is None
        else {"name": attack.name, "config": config_to_dict(attack.config)},
    }
    kind = "clean" if attack is None else "badnet"
    key = content_key(kind, spec)
    if attack is not None:
        attack.prepare(data.train)  # its trained parts, needed by the poisoned test set too
    hit = cache.load_model(kind, key)
    if hit is not None:
        return Trained(hit[0], hit[1], cached=True, key=key)
    torch.manual_seed(seed)  # the initial weights belong to the cache key too
    model = build_model(model_name, data.image_shape, data.num_classes)
    train, hook = data.train, None
    if attack is not None:
        train = attack.poison(data.train, torch.Generator().manual_seed(seed)).data
        hook = attack.batch_hook()
    result = train_classifier(model, train, recipe, seed=seed, batch_hook=hook)
    header = {**spec, "status": result.status, "train_seconds": round(result.seconds, 3)}
    log.info(
        "trained %s %s in %.1fs (%s)",
        kind,
        attack.name if attack else model_name,
        result.seconds,
        result.status,
    )
    cache.save_model(kind, key, model, header)
    return Trained(model, header, cached=False, key=key)


def clean_verdict(
    defense: Defense, clean: Trained, val: Split, cache: ArtifactCache
) -> bool | None:
    """Whether ``defense`` flags the clean reference model: fitted once per (clean model,
    defense config, seed) and cached, since every BadNet of a duel is checked against it."""
    key = content_key(
        "verdict", {"model": clean.key, "defense": defense.describe(), "seed": defense.seed}
    )
    hit = cache.load_json("verdict", key)
    if hit is not None:
        return hit["flagged"]  # type: ignore[no-any-return]
    flagged = defense.fit(clean.model, val).flagged
    cache.save_json("verdict", key, {"flagged": flagged})
    return flagged


def measure(
    model: ArenaNet, deployed: Deployment, test: Split, triggered: Split
) -> dict[str, float]:
    """The papers' metrics of a deployed defense: CA and ASR of the undefended ``model``; SDA
    (clean accuracy of the served system), FRR (clean inputs rejected), FAR (triggered inputs
    accepted) and SASR (triggered inputs accepted and sent to their target)."""
    passed = deployed.accept(triggered.x)
    return {
        "ca": accuracy(model, test.x, test.y),
        "asr": accuracy(model, triggered.x, triggered.y),
        "sda": float((deployed.predict(test.x) == test.y).float().mean()),
        "frr": 1.0 - float(deployed.accept(test.x).float().mean()),
        "far": float(passed.float().mean()),
        "sasr": float((passed & (deployed.predict(triggered.x) == triggered.y)).float().mean()),
    }


def score(
    *,
    clean_ca: float,
    ca: float,
    asr: float,
    sda: float,
    sasr: float,
    frr: float,
    far: float,
    flagged: bool | None,
    clean_flagged: bool | None,
    gates: Gates,
) -> tuple[float, dict[str, Any]]:
    """The payoff of a cell and which gate, if any, decided it (see the module docstring).

    ``far`` is taken for symmetry with :func:`measure` and does not enter the payoff directly:
    a filter's acceptances are already inside ``sasr``."""
    reasons: list[str] = []
    if clean_ca - ca > gates.delta_attack:
        reasons.append(f"BadNet CA {ca:.3f} is more than {gates.delta_attack} below {clean_ca:.3f}")
        return 0.0, {"decided_by": "user", "reasons": reasons}
    if ca - sda > gates.delta_defense:
        reasons.append(f"defense costs {ca - sda:.3f} of clean accuracy (> {gates.delta_defense})")
    if frr > gates.frr_budget:
        reasons.append(f"defense rejects {frr:.3f} of clean inputs (> {gates.frr_budget})")
    if clean_flagged:
        reasons.append("defense flags the clean reference model")
    if reasons:
        return asr, {"decided_by": "defense", "reasons": reasons}
    if flagged:
        return 0.0, {"decided_by": None, "reasons": ["BadNet flagged: not deployed"]}
    return sasr, {"decided_by": None, "reasons": []}


def evaluate_cell(
    attack: Attack,
    defense: Defense,
    *,
    data: Splits,
    data_ref: DataRef,
    model_name: str,
    recipe: TrainConfig,
    seed: int,
    cache: ArtifactCache,
    gates: Gates = Gates(),
    skip_rejected: bool = False,
) -> CellResult:
    """Score ``attack`` against ``defense`` on ``data`` (one seed).

    With ``skip_rejected``, a BadNet that the user's gate rejects is scored 0 without running
    the defense (its defense metrics are then ``None``): the duel's searches meet many such
    recipes, and the defense cannot change their payoff."""
    clock = _Clock()
    with clock.phase("clean_model"):
        clean = train_model(data, data_ref, model_name, TrainConfig(), seed, cache)
    with clock.phase("badnet"):
        bad = train_model(data, data_ref, model_name, recipe, seed, cache, attack=attack)
    test = data.test
    triggered = attack.poisoned_test(test, torch.Generator().manual_seed(seed + 1))
    clean_ca = accuracy(clean.model, test.x, test.y)
    ca = accuracy(bad.model, test.x, test.y)
    deployed: Deployment | None = None
    clean_flagged = None
    if skip_rejected and clean_ca - ca > gates.delta_attack:
        # the user's gate decides the cell before any defense runs: the BadNet is never deployed
        m: dict[str, Any] = {
            "ca": ca,
            "asr": accuracy(bad.model, triggered.x, triggered.y),
            **dict.fromkeys(("sda", "frr", "far", "sasr")),
        }
        payoff, decision = (
            0.0,
            {
                "decided_by": "user",
                "reasons": [
                    f"BadNet CA {ca:.3f} is more than {gates.delta_attack} below {clean_ca:.3f}; "
                    "the defense was not run"
                ],
            },
        )
    else:
        with clock.phase("defense"):
            deployed = defense.fit(bad.model, data.val)
        if defense.kind == "detector":
            with clock.phase("defense_clean"):
                clean_flagged = clean_verdict(defense, clean, data.val, cache)
        with clock.phase("metrics"):
            m = measure(bad.model, deployed, test, triggered)
        payoff, decision = score(
            clean_ca=clean_ca,
            **m,
            flagged=deployed.flagged,
            clean_flagged=clean_flagged,
            gates=gates,
        )
    flagged = None if deployed is None else deployed.flagged
    detection = {
        "badnet": flagged,
        "clean": clean_flagged,
        "outcome": None if flagged is None else ("TP" if flagged else "FN"),
        "clean_outcome": None if clean_flagged is None else ("FP" if clean_flagged else "TN"),
        "details": {} if deployed is None else deployed.details,
    }
    gate_info = {
        **decision,
        "clean_ca": clean_ca,
        "badnet_status": bad.header.get("status", "ok"),
        "cached": {"clean_model": clean.cached, "badnet": bad.cached},
        **asdict(gates),
    }
    clock.seconds["total"] = round(sum(clock.seconds.values()), 3)
    return CellResult(
        **m, detection=detection, payoff=payoff, gates=gate_info, seconds=clock.seconds
    )


def evaluate(
    attacker: str,
    defender: str,
    *,
    data_ref: DataRef = DataRef(),
    model_name: str = "small-cnn",
    recipe: TrainConfig = TrainConfig(),
    attack_config: Any = None,
    defense_config: Any = None,
    seed: int = 0,
    cache: ArtifactCache | None = None,
    gates: Gates = Gates(),
) -> CellResult:
    """Load the data, build both strategies by name and score the cell. ``defender`` may be a
    pipeline (``strip+bdmae``); its ``defense_config`` is then one config (or ``None``) per
    stage."""
    start = time.perf_counter()
    data = data_ref.load()
    data_seconds = time.perf_counter() - start
    cache = cache or ArtifactCache()
    attack = attack_class(attacker)(
        attack_config, image_shape=data.image_shape, num_classes=data.num_classes, cache=cache
    )
    names = parse_defenses(defender)
    configs = [defense_config] if len(names) == 1 else defense_config
    defense = build_defense(names, configs, seed=seed, cache=cache)
    result = evaluate_cell(
        attack,
        defense,
        data=data,
        data_ref=data_ref,
        model_name=model_name,
        recipe=recipe,
        seed=seed,
        cache=cache,
        gates=gates,
    )
    result.seconds = {"data": round(data_seconds, 3), **result.seconds}
    result.seconds["total"] = round(time.perf_counter() - start, 3)
    return result
