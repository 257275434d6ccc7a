"""Watching a BadNet learn, and stopping one that cannot pass the user's gate.

An attacker's trial trains a BadNet before any defense runs, and the user's gate (the BadNet's
clean accuracy at most ``delta_attack`` below the clean model's) then decides many trials
alone: a recipe that has not learned the task pays 0 whatever the defense does. Its first
epochs already show it. Inside :func:`watching`, every BadNet that a cell trains reports its
clean accuracy and attack success on the test split after each epoch (:class:`Watch`, whose
``curve`` the trial hands to its Optuna study as intermediate values); with a
:class:`GateRule`, a BadNet whose accuracy at a given share of its epochs lies further below the
gate's threshold than the rule's margin stops there (:class:`TrialPruned`), uncached, and the
trial is recorded as pruned, never as a payoff.

The rule's margins come from a measurement (``bench/pruning.py``, bench/README.md, "Pruning"):
on completed searches, at most 5% of the trials it would have stopped went on to pass the gate.
Watching costs one pass over the test split per epoch (a few ms on ``digits``); the curve is the
same with or without a rule, and a BadNet that is not stopped is the one trained unwatched.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from arena.core.infer import predict
from arena.data.splits import Split


@dataclass(frozen=True)
class GateRule:
    """Stop a BadNet when, after at least ``after`` of its epochs, its clean accuracy lies more
    than ``margin`` below the gate's threshold (the clean model's accuracy less
    ``delta_attack``)."""

    after: float = 0.2
    margin: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 < self.after <= 1.0 or self.margin < 0.0:
            raise ValueError(
                f"a pruning rule needs 0 < after <= 1 and margin >= 0; got {self.after}, "
                f"{self.margin}"
            )

    def stops(self, epoch: int, epochs: int, accuracy: float, threshold: float) -> bool:
        return (
            epoch < epochs and epoch >= self.after * epochs and accuracy < threshold - self.margin
        )


class TrialPruned(Exception):
    """A watched BadNet was stopped by the rule; ``reason`` says where and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Watch:
    """The learning curve of the first BadNet trained inside :func:`watching`: one
    ``[epoch, clean accuracy, attack success]`` per epoch; ``rule`` may stop it."""

    rule: GateRule | None = None
    curve: list[list[float | None]] = field(default_factory=list)
    threshold: float | None = None
    watched: bool = False


Check = Callable[[int, int, nn.Module], None]
_WATCH: contextvars.ContextVar[Watch | None] = contextvars.ContextVar("arena_watch", default=None)


@contextlib.contextmanager
def watching(rule: GateRule | None = None) -> Iterator[Watch]:
    """Within the body, BadNets trained by cells report their curve (and ``rule`` may stop
    them)."""
    watch = Watch(rule)
    token = _WATCH.set(watch)
    try:
        yield watch
    finally:
        _WATCH.reset(token)


def monitor(
    test: Split,
    poisoned: Callable[[], Mapping[str, Split]] | None,
    clean_ca: float,
    delta_attack: float,
) -> Check | None:
    """Inside :func:`watching`, an ``(epoch, epochs, model)`` callback for the BadNet about to
    be trained, which watches it if it is the first BadNet trained in the body: its clean
    accuracy on ``test`` and its best attack success on the ``poisoned()`` test sets (``None``:
    an attack whose trigger trains with the BadNet, measured only once both are trained).
    ``None`` outside :func:`watching`."""
    watch = _WATCH.get()
    if watch is None:
        return None
    threshold = clean_ca - delta_attack
    sets: list[Split] = []
    mine = False

    def check(epoch: int, epochs: int, model: nn.Module) -> None:
        nonlocal mine
        assert watch is not None
        if epoch == 1 and not watch.watched:  # the first BadNet trained in the body
            mine = watch.watched = True
            watch.threshold = threshold
            sets[:] = [s for s in (poisoned() if poisoned else {}).values() if len(s)]
        if not mine:
            return
        with torch.random.fork_rng(devices=[]):  # the training's random stream stays its own
            ca = float((predict(model, test.x) == test.y).float().mean())
            asr = max(
                (float((predict(model, s.x) == s.y).float().mean()) for s in sets), default=None
            )
        watch.curve.append([epoch, round(ca, 4), None if asr is None else round(asr, 4)])
        if watch.rule is not None and watch.rule.stops(epoch, epochs, ca, threshold):
            raise TrialPruned(
                f"clean accuracy {ca:.3f} after {epoch} of {epochs} epochs, more than "
                f"{watch.rule.margin} below the gate's {watch.threshold:.3f}"
            )

    return check
