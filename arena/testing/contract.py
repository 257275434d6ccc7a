"""What the attack and defense suites share: how a check runs and fails, and the tiny data and
model the checks use.

A check is a function of the strategy class that returns ``None`` or raises
:class:`ContractError`. It runs inside :func:`probing`, which names the check and the config it
tries in every failure, turns any other exception into a failure of that check, and leaves
torch's global random state as it found it. A check that does not apply to a class raises
:class:`NotApplicable` (the suite reports it as skipped).

Every check works on its own copies of the data and the model, so a strategy that changes what
it is given fails its own check without spoiling the others.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from arena.core.train import TrainConfig, train_classifier
from arena.data import Splits, load_dataset
from arena.data.splits import Split
from arena.models import ArenaNet, build_model

DATA_LIMIT = 150
"""Images per split of the default data (digits)."""
MODEL_EPOCHS = 4
"""Epochs of the default model (``small-cnn`` on the default data)."""


@dataclass(frozen=True)
class Failure:
    """One failed check: the strategy class, the check, the config it tried (``None`` where the
    check tries none), what the contract expects and what happened instead."""

    strategy: str
    check: str
    config: Any
    expected: str
    got: str

    def __str__(self) -> str:
        tried = "" if self.config is None else f", with {self.config!r}"
        return f"{self.check}{tried}: expected {self.expected}; got {self.got}"


class ContractError(AssertionError):
    """A strategy class breaks the contract: every failed check, one line each."""

    def __init__(self, failures: Sequence[Failure], passed: Sequence[str] = ()) -> None:
        self.failures = list(failures)
        self.passed = tuple(passed)
        super().__init__(self._message())

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.failures, self.passed))

    def _message(self) -> str:
        strategies = list(dict.fromkeys(f.strategy for f in self.failures))
        checks = list(dict.fromkeys(f.check for f in self.failures))
        head = (
            f"{' and '.join(strategies) or 'a strategy'} fails {len(checks)} contract "
            f"check{'s' if len(checks) != 1 else ''} ({', '.join(checks)})"
        )
        if self.passed:
            head += f"; passes {len(self.passed)} ({', '.join(self.passed)})"
        return "\n".join([head + ":", *(f"- {f}" for f in self.failures)])


class NotApplicable(Exception):
    """A check that does not apply to the class it was given (an attack with one target has no
    all-to-all check); the message says why."""


class Check(NamedTuple):
    """One check of one strategy class, ready to run: ``run()`` returns ``None`` or raises
    :class:`ContractError` (or :class:`NotApplicable`)."""

    name: str
    run: Callable[[], None]


@dataclass(frozen=True)
class Report:
    """What a whole suite found on a class that passed it."""

    strategy: str
    passed: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    """Checks that do not apply to the class, with the reason."""

    def __str__(self) -> str:
        text = f"{self.strategy} passes {len(self.passed)} contract checks"
        if self.skipped:
            text += "; skipped: " + "; ".join(f"{k} ({v})" for k, v in self.skipped.items())
        return text


def describe(cls: Any, kind: str) -> str:
    """A strategy class as failures name it: ``MyAttack (attack 'mine')``."""
    label = getattr(cls, "__qualname__", repr(cls))
    name = getattr(cls, "name", None)
    return f"{label} ({kind} {name!r})" if isinstance(name, str) else f"{label} ({kind})"


class Probe:
    """A check as it runs on one strategy class. ``config`` is the config it tries now (named
    in a failure); :meth:`expect` fails the check when its condition is false."""

    def __init__(self, cls: Any, kind: str, check: str) -> None:
        self.strategy = describe(cls, kind)
        self.check = check
        self.config: Any = None

    def failure(self, expected: str, got: str) -> ContractError:
        return ContractError([Failure(self.strategy, self.check, self.config, expected, got)])

    def expect(self, ok: bool, expected: str, got: str) -> None:
        """Fail the check with ``expected`` and ``got`` unless ``ok``."""
        if not ok:
            raise self.failure(expected, got)


@contextmanager
def probing(cls: Any, kind: str, check: str) -> Iterator[Probe]:
    """Run the body as check ``check`` of ``cls`` (a ``kind``, ``"attack"`` or ``"defense"``):
    an exception other than :class:`ContractError` or :class:`NotApplicable` fails the check,
    and torch's global random state is restored afterwards."""
    probe = Probe(cls, kind, check)
    with torch.random.fork_rng(devices=[]):
        try:
            yield probe
        except (ContractError, NotApplicable):
            raise
        except Exception as exc:
            raise probe.failure("no exception", f"{type(exc).__name__}: {exc}") from exc


def run_checks(strategy: str, checks: Sequence[Check]) -> Report:
    """Run every check; raise one :class:`ContractError` with every failure, or return the
    :class:`Report`."""
    failures: list[Failure] = []
    passed: list[str] = []
    skipped: dict[str, str] = {}
    for check in checks:
        try:
            check.run()
        except NotApplicable as why:
            skipped[check.name] = str(why)
        except ContractError as error:
            failures.extend(error.failures)
        except Exception as exc:  # a check run outside :func:`probing`
            failures.append(Failure(strategy, check.name, None, "no exception", repr(exc)))
        else:
            passed.append(check.name)
    if failures:
        raise ContractError(failures, passed)
    return Report(strategy, tuple(passed), skipped)


def pytest_params(checks: Sequence[Check]) -> list[Any]:
    """One ``pytest.param`` per check, with the check's name as its id; its value is a callable
    that runs the check and turns :class:`NotApplicable` into ``pytest.skip``. pytest is
    imported here only, so the suite imports without it."""
    import pytest

    def skipping(run: Callable[[], None]) -> Callable[[], None]:
        def call() -> None:
            try:
                run()
            except NotApplicable as why:
                pytest.skip(str(why))

        return call

    return [pytest.param(skipping(c.run), id=c.name) for c in checks]


# --- the data and model the checks share ---


@functools.lru_cache(maxsize=1)
def tiny_data() -> Splits:
    """Digits, :data:`DATA_LIMIT` images per split (seed 0), loaded once per process."""
    return load_dataset("digits", limit=DATA_LIMIT, seed=0)


def tiny_model(data: Splits | None = None) -> ArenaNet:
    """A ``small-cnn`` trained for :data:`MODEL_EPOCHS` epochs on ``data``'s training split
    (:func:`tiny_data` by default), trained once per data object and shared: copy it before
    changing it. Training leaves torch's global random state as it was."""
    return _trained(data if data is not None else tiny_data())


@functools.lru_cache(maxsize=4)
def _trained(data: Splits) -> ArenaNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the initial weights
        model = build_model("small-cnn", data.image_shape, data.num_classes)
        train_classifier(model, data.train, TrainConfig(epochs=MODEL_EPOCHS), seed=0)
    return model


def own_copy(data: Splits) -> Splits:
    """A copy of ``data`` whose tensors no one else holds."""

    def split(s: Split) -> Split:
        return Split(s.x.clone(), s.y.clone())

    return dataclasses.replace(
        data, train=split(data.train), val=split(data.val), test=split(data.test)
    )


def own_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` for one check."""
    return copy.deepcopy(model)


def same(a: Any, b: Any) -> bool:
    """Whether two values are equal, tensors (compared exactly) and containers of them
    included."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and bool(torch.equal(a, b))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # NaN measured twice
    return bool(a == b)


def json_ready(value: Any) -> str | None:
    """``None`` when ``value`` serialises to JSON, else why not."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
