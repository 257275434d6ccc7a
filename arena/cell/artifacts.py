"""What a cell trains or fits before it can be scored, from the artifact cache or made now:
the clean reference model, the BadNet, and a detector's verdict on the clean model.

A model is cached under the content key of everything that produced it (the data, the
architecture, the training recipe, the seed, the versions of the code that made it and, for a
BadNet, the attack, its config and its version), so a defender's trial never retrains a BadNet,
a second run trains nothing, and a changed strategy or trainer never replays a stale model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from arena.cell.setting import Setting, code_versions
from arena.core.cache import ArtifactCache, content_key
from arena.core.config import config_to_dict
from arena.core.train import TrainConfig, train_classifier
from arena.data import Split
from arena.models import ArenaNet, build_model
from strategies.attacks import Attack
from strategies.defenses import Defense

log = logging.getLogger(__name__)


@dataclass
class Trained:
    """A model with its header (what made it); ``cached``: read from the cache, not trained."""

    model: ArenaNet
    header: dict[str, Any]
    cached: bool
    key: str = ""


def train_model(
    setting: Setting,
    seed: int,
    cache: ArtifactCache,
    *,
    recipe: TrainConfig = TrainConfig(),
    attack: Attack | None = None,
    monitor: Callable[[int, int, nn.Module], None] | None = None,
) -> Trained:
    """The clean model (``attack=None``) or the BadNet for these settings, from the cache or
    trained now and cached. ``monitor(epoch, epochs, model)`` is called after each epoch of a
    training (:mod:`arena.cell.pruning`); what it raises stops the training, and nothing is
    cached."""
    data = setting.splits()
    spec = {
        "data": asdict(setting.data),
        "arch": setting.model,
        "train": config_to_dict(recipe),
        "seed": seed,
        "attack": None
        if attack is None
        else {"name": attack.name, "config": config_to_dict(attack.config)},
        "versions": {**code_versions(), "attack": None if attack is None else attack.version},
    }
    kind = "clean" if attack is None else "badnet"
    key = content_key(kind, spec)
    if attack is not None:
        attack.prepare(data.train)  # its trained parts, needed by the poisoned test set too
    hit = cache.load_model(kind, key)
    part_kind = f"{attack.name}-badnet-part" if attack is not None else ""
    if hit is not None and attack is not None and attack.trains_with_badnet:
        part = cache.load_state(part_kind, key)  # trained with this BadNet: kept beside it
        if part is None:
            hit = None  # a BadNet without its part cannot be measured: trained again
        else:
            attack.load_badnet_part(part[0])
    if hit is not None:
        return Trained(hit[0], hit[1], cached=True, key=key)
    torch.manual_seed(seed)  # the initial weights belong to the cache key too
    model = build_model(setting.model, data.image_shape, data.num_classes)
    train, hook = data.train, None
    if attack is not None:
        train, hook = attack.training_set(data.train, torch.Generator().manual_seed(seed))
    callback: Callable[[int, dict[str, float]], None] | None = None
    if monitor is not None:
        watched = monitor

        def watch_epoch(epoch: int, _: dict[str, float]) -> None:
            watched(epoch, recipe.epochs, model)

        callback = watch_epoch

    result = train_classifier(
        model, train, recipe, seed=seed, batch_hook=hook, callback=callback
    )
    header = {**spec, "status": result.status, "train_seconds": round(result.seconds, 3)}
    log.info(
        "trained %s %s in %.1fs (%s)",
        kind,
        attack.name if attack else setting.model,
        result.seconds,
        result.status,
    )
    cache.save_model(kind, key, model, header)
    trained_part = attack.badnet_part() if attack is not None else None
    if trained_part is not None:
        cache.save_state(part_kind, key, trained_part, {"badnet": key})
    return Trained(model, header, cached=False, key=key)


def clean_verdict(
    defense: Defense, clean: Trained, val: Split, cache: ArtifactCache
) -> bool | None:
    """Whether ``defense`` flags the clean reference model: fitted once per (clean model,
    defense config, seed) and cached, since every BadNet of a duel is checked against it. The
    verdict is kept on its own (a small record, read first); the fit behind it is cached by
    :meth:`Defense.fit` too, for whatever else fits this defense on the clean model."""
    key = content_key(
        "verdict", {"model": clean.key, "defense": defense.describe(), "seed": defense.seed}
    )
    hit = cache.load_json("verdict", key)
    if hit is not None:
        return bool(hit["flagged"]) if hit["flagged"] is not None else None
    flagged = defense.fit(clean.model, val).flagged
    cache.save_json("verdict", key, {"flagged": flagged})
    return flagged
