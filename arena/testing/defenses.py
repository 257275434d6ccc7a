"""The contract every defense class passes: the checks of
``tests/strategies/test_defense_suite.py`` (and of ``tests/strategies/test_configs.py``), for a
class of any package.

Each check is a function ``check(cls, data=None, model=None, config=None)``: ``data`` is the
dataset it runs on (:func:`arena.testing.contract.tiny_data` by default), ``model`` the model
the defense is fitted to (:func:`arena.testing.contract.tiny_model` of the data by default),
``config`` the config the checks start from (the class's default config by default; give one
with small budgets to keep the checks fast). The search-space check fits sampled configs as
the studies draw them, full budgets included. Each check returns ``None`` or raises
:class:`ContractError`; :data:`CHECKS` lists them in the order :func:`check_defense` runs them.
"""

from __future__ import annotations

import functools
import math
import typing
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from arena.data import Splits
from arena.testing.contract import (
    Check,
    NotApplicable,
    Probe,
    Report,
    describe,
    json_ready,
    own_copy,
    own_model,
    probing,
    pytest_params,
    run_checks,
    same,
    tiny_data,
    tiny_model,
)
from arena.testing.shared_checks import (
    expect_choices_refused,
    expect_class_attributes,
    expect_config_fields,
    expect_registry_entry,
    expect_round_trips,
)
from strategies.defenses.base import Access, Defense, DefenseConfig, Deployment, Kind, Panel
from strategies.registry import DEFENSES

KIND = "defense"
SAMPLES = 12
"""Configs the search-space check draws and round-trips."""
SAMPLED_FITS = 3
"""Of those, how many it fits (the first ones; the first is the one the built-in suite fits)."""
SEED = 3
"""The seed of the determinism check's two fits."""


def _subjects(data: Splits | None, model: nn.Module | None) -> tuple[Splits, nn.Module]:
    """This check's own copies of the data and the model."""
    base = data if data is not None else tiny_data()
    given = model if model is not None else tiny_model(base)
    return own_copy(base), own_model(given)


def _config(cls: Any, config: DefenseConfig | None) -> DefenseConfig:
    return config if config is not None else cls.config_cls()


def _fit(
    probe: Probe, cls: Any, config: DefenseConfig, model: nn.Module, data: Splits, seed: int = 0
) -> tuple[Defense[Any], Deployment]:
    probe.config = config
    defense: Defense[Any] = cls(config, seed=seed)
    return defense, defense.fit(model, data.val)


def _expect_outputs(
    probe: Probe, defense: Defense[Any], deployed: Any, data: Splits, *, verdict: bool
) -> None:
    """What the payoff reads from a deployment, on the test images, with their types. A
    detector gives a verdict (``flagged`` a bool) where ``verdict``, and may give none (a
    config that only repairs) otherwise; other defenses never do."""
    probe.expect(
        isinstance(deployed, Deployment),
        "fit to return a strategies.defenses.Deployment",
        type(deployed).__qualname__,
    )
    x = data.test.x
    before = x.clone()
    n, classes = len(x), data.num_classes
    accepted = deployed.accept(x)
    probe.expect(
        isinstance(accepted, torch.Tensor)
        and accepted.dtype == torch.bool
        and tuple(accepted.shape) == (n,),
        f"accept(x) a bool tensor of shape ({n},)",
        f"{getattr(accepted, 'dtype', type(accepted).__name__)} of shape "
        f"{tuple(getattr(accepted, 'shape', ()))}",
    )
    labels = deployed.predict(x)
    probe.expect(
        isinstance(labels, torch.Tensor)
        and labels.dtype == torch.long
        and tuple(labels.shape) == (n,),
        f"predict(x) an int64 tensor of shape ({n},)",
        f"{getattr(labels, 'dtype', type(labels).__name__)} of shape "
        f"{tuple(getattr(labels, 'shape', ()))}",
    )
    low, high = int(labels.min()), int(labels.max())
    probe.expect(
        low >= 0 and high < classes,
        f"predicted labels in 0..{classes - 1}",
        f"labels from {low} to {high}",
    )
    purified = deployed.purify(x)
    probe.expect(
        isinstance(purified, torch.Tensor) and purified.shape == x.shape,
        f"purify(x) a tensor of shape {tuple(x.shape)}",
        f"{tuple(getattr(purified, 'shape', ()))}",
    )
    probe.expect(
        torch.equal(x, before),
        "accept, predict and purify to leave their input unchanged",
        "the input images changed",
    )
    flagged = deployed.flagged
    detector = defense.kind == "detector"
    if detector:
        probe.expect(
            isinstance(flagged, bool) or (flagged is None and not verdict),
            "flagged a bool (a detector's verdict)" + ("" if verdict else " or None"),
            repr(flagged),
        )
    else:
        probe.expect(flagged is None, "flagged None (not a detector)", repr(flagged))
    named = deployed.named
    probe.expect(
        named is None
        or (
            isinstance(named, list) and all(isinstance(k, int) and 0 <= k < classes for k in named)
        ),
        f"named None or a list of labels in 0..{classes - 1}",
        repr(named),
    )
    probe.expect(isinstance(deployed.details, dict), "details a dict", repr(deployed.details))
    why = json_ready(deployed.details)
    probe.expect(why is None, "details JSON-ready", f"{why}")


def attributes(
    cls: Any,
    data: Splits | None = None,
    model: nn.Module | None = None,
    config: DefenseConfig | None = None,
) -> None:
    """The class subclasses :class:`Defense`, implements ``fit_copy``, and declares ``name``,
    ``version``, ``summary``, ``kind``, ``access`` and ``config_cls``; its name is free in the
    registry (or its own)."""
    with probing(cls, KIND, "attributes") as probe:
        expect_class_attributes(probe, cls, Defense, DefenseConfig)
        expect_registry_entry(probe, cls, DEFENSES)
        kinds, accesses = typing.get_args(Kind), typing.get_args(Access)
        kind, access = getattr(cls, "kind", None), getattr(cls, "access", None)
        probe.expect(kind in kinds, f"`kind` one of {', '.join(kinds)}", repr(kind))
        probe.expect(access in accesses, f"`access` one of {', '.join(accesses)}", repr(access))
        probe.expect(isinstance(cls.caches_fit, bool), "`caches_fit` a bool", repr(cls.caches_fit))


def config_fields(
    cls: Any,
    data: Splits | None = None,
    model: nn.Module | None = None,
    config: DefenseConfig | None = None,
) -> None:
    """Every config field is searched (``param``) or fixed (``fixed``), each searched default
    inside its range."""
    with probing(cls, KIND, "config_fields") as probe:
        num_classes = data.num_classes if data is not None else tiny_data().num_classes
        expect_config_fields(probe, cls.config_cls, num_classes)


def choices(
    cls: Any,
    data: Splits | None = None,
    model: nn.Module | None = None,
    config: DefenseConfig | None = None,
) -> None:
    """A value outside a field's declared choices is refused with a ``ValueError`` naming the
    field (the defense base does this unless a subclass gets in its way)."""
    with probing(cls, KIND, "choices") as probe:
        expect_choices_refused(probe, cls.config_cls, _config(cls, config), cls)


def search_space(
    cls: Any,
    data: Splits | None = None,
    model: nn.Module | None = None,
    config: DefenseConfig | None = None,
) -> None:
    """Configs sampled from the search space by Optuna round-trip through the trial's
    parameters and differ from each other; the first :data:`SAMPLED_FITS` of them fit, and
    their deployments give outputs of the right types and shapes (a detector's sampled config
    may give no verdict: Neural Cleanse told its target only repairs)."""
    with probing(cls, KIND, "search_space") as probe:
        data, own = _subjects(data, model)
        sampled = expect_round_trips(
            probe, cls.config_cls, data.num_classes, SAMPLES, seed=0, base=config
        )
        for chosen in sampled[:SAMPLED_FITS]:
            defense, deployed = _fit(probe, cls, chosen, own_model(own), data)
            _expect_outputs(probe, defense, deployed, data, verdict=False)


def deployment(
    cls: Any,
    data: Splits | None = None,
    model: nn.Module | None = None,
    config: DefenseConfig | None = None,
) -> None:
    """The deployment of the starting config: ``accept`` gives a bool per image, ``predict`` a
    label of the data's classes per image, ``purify`` images of the input's shape, none of
    them changing the input; ``flagged`` is a bool for a detector and ``None`` otherwise;
    ``named`` is ``None`` or a list of labels; ``details`` is JSON-ready; ``show`` gives a list
    of panels."""
    with probing(cls, KIND, "deployment") as probe:
        data, own = _subjects(data, model)
        defense, deployed = _fit(probe, cls, _config(cls, config), own, data)
        _expect_outputs(probe, defense, deployed, data, verdict=True)
        panels = defense.show(deployed, data.val, data.test)
        probe.expect(
            isinstance(panels, list) and all(isinstance(p, Panel) for p in panels),
            "show to return a list of strategies.defenses.Panel",
            repr(type(panels)) if not isinstance(panels, list) else repr(panels)[:200],
        )


def _flags(model: nn.Module) -> tuple[list[bool], list[bool]]:
    return [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]


def never_mutates_model(
    cls: Any,
    data: Splits | None = None,
    model: nn.Module | None = None,
    config: DefenseConfig | None = None,
) -> None:
    """Fitting the defense and using its deployment (``predict``, ``accept``, ``purify``,
    ``show``) leave the model it was given as it was: weights and buffers, gradients, train or
    eval modes, and ``requires_grad``."""
    with probing(cls, KIND, "never_mutates_model") as probe:
        data, own = _subjects(data, model)
        before = {k: v.clone() for k, v in own.state_dict().items()}
        grads = [None if p.grad is None else p.grad.clone() for p in own.parameters()]
        flags = _flags(own)
        defense, deployed = _fit(probe, cls, _config(cls, config), own, data)
        deployed.predict(data.test.x)
        deployed.accept(data.test.x)
        deployed.purify(data.test.x)
        defense.show(deployed, data.val, data.test)
        after = own.state_dict()
        changed = [k for k in before if k not in after or not same(before[k], after[k])]
        probe.expect(not changed, "the model's weights and buffers unchanged", f"{changed} changed")
        probe.expect(
            all(map(same, grads, [p.grad for p in own.parameters()])),
            "the model's gradients unchanged",
            "some changed",
        )
        probe.expect(
            _flags(own) == flags,
            "the train/eval modes and requires_grad of the model unchanged",
            "some changed",
        )


def deterministic(
    cls: Any,
    data: Splits | None = None,
    model: nn.Module | None = None,
    config: DefenseConfig | None = None,
) -> None:
    """Two defenses of the same config and seed, fitted to the same model, serve the same
    verdict, details, named labels, accepted inputs, purified inputs and predictions."""
    with probing(cls, KIND, "deterministic") as probe:
        data, own = _subjects(data, model)
        chosen = _config(cls, config)
        _, a = _fit(probe, cls, chosen, own_model(own), data, seed=SEED)
        _, b = _fit(probe, cls, chosen, own_model(own), data, seed=SEED)
        x = data.test.x
        for what, left, right in (
            ("flagged", a.flagged, b.flagged),
            ("details", a.details, b.details),
            ("named", a.named, b.named),
            ("accept(x)", a.accept(x), b.accept(x)),
            ("purify(x)", a.purify(x), b.purify(x)),
            ("predict(x)", a.predict(x), b.predict(x)),
        ):
            probe.expect(
                same(left, right),
                f"the same {what} from two fits with seed {SEED}",
                f"{_short(left)} and {_short(right)}",
            )


def _short(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def white_box_needs_arena_net(
    cls: Any,
    data: Splits | None = None,
    model: nn.Module | None = None,
    config: DefenseConfig | None = None,
) -> None:
    """A white-box defense refuses a model that is not an Arena network with a ``TypeError``
    that names it (the defense base does this). Not for black-box defenses."""
    if cls.access != "white-box":
        raise NotApplicable(f"{cls.name} is a black-box defense")
    with probing(cls, KIND, "white_box_needs_arena_net") as probe:
        data, _ = _subjects(data, model)
        plain = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(data.image_shape), data.num_classes)
        )
        try:
            _fit(probe, cls, _config(cls, config), plain, data)
        except TypeError as exc:
            expected = f"{cls.name} is a white-box defense and needs an Arena network"
            probe.expect(
                str(exc).startswith(expected), f"a TypeError that begins {expected!r}", str(exc)
            )
        else:
            probe.expect(False, "a TypeError for a plain nn.Sequential", "a deployment")


DefenseCheck = Callable[[Any, Splits | None, nn.Module | None, DefenseConfig | None], None]

CHECKS: tuple[DefenseCheck, ...] = (
    attributes,
    config_fields,
    choices,
    search_space,
    deployment,
    never_mutates_model,
    deterministic,
    white_box_needs_arena_net,
)
"""Every defense check, in the order the suite runs them."""


def defense_checks(
    cls: Any,
    data: Splits | None = None,
    model: nn.Module | None = None,
    *,
    config: DefenseConfig | None = None,
) -> list[Check]:
    """Every check of ``cls`` as ``(name, run)`` pairs: ``run()`` takes no argument and returns
    ``None``, or raises :class:`ContractError` (or :class:`NotApplicable` for a check that does
    not apply). Nothing runs, and no data loads or model trains, until a ``run`` is called."""
    return [Check(c.__name__, functools.partial(c, cls, data, model, config)) for c in CHECKS]


def check_defense(
    cls: Any,
    data: Splits | None = None,
    model: nn.Module | None = None,
    *,
    config: DefenseConfig | None = None,
) -> Report:
    """Run every check on defense class ``cls``: one :class:`ContractError` lists every check it
    fails, else the :class:`Report` says which passed and which did not apply."""
    return run_checks(describe(cls, KIND), defense_checks(cls, data, model, config=config))


def defense_suite(
    cls: Any,
    data: Splits | None = None,
    model: nn.Module | None = None,
    *,
    config: DefenseConfig | None = None,
) -> list[Any]:
    """The checks of ``cls`` as ``pytest.param``s, for ``@pytest.mark.parametrize``; a check
    that does not apply is skipped (pytest is imported by this function only)."""
    return pytest_params(defense_checks(cls, data, model, config=config))
