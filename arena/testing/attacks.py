"""The contract every attack class passes: the checks of ``tests/strategies/test_attack_suite.py``
(and of ``tests/strategies/test_configs.py``), for a class of any package.

Each check is a function ``check(cls, data=None, config=None)``: ``data`` is the dataset it
runs on (:func:`arena.testing.contract.tiny_data` by default), ``config`` the config the checks
start from (the class's default config by default; give one with small budgets for an attack
that trains a part). Each returns ``None`` or raises :class:`ContractError`; :data:`CHECKS`
lists them in the order :func:`check_attack` runs them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import torch

from arena.data import Splits
from arena.testing.contract import (
    Check,
    NotApplicable,
    Probe,
    Report,
    describe,
    own_copy,
    probing,
    pytest_params,
    run_checks,
    tiny_data,
)
from arena.testing.shared_checks import (
    expect_choices_refused,
    expect_class_attributes,
    expect_config_fields,
    expect_registry_entry,
    expect_round_trips,
)
from strategies.attacks.base import MULTI_TARGETS, Attack, AttackConfig
from strategies.registry import ATTACKS

KIND = "attack"
SAMPLES = 12
"""Configs the search-space check draws (each builds, prepares and stamps)."""
RATES = (0.05, 0.2)
"""Poison rates the poison-rate check asks for."""
MIN_TRIGGER = 0.05
"""Least change, somewhere in each image, that counts as carrying a trigger."""


def _data(data: Splits | None) -> Splits:
    return own_copy(data if data is not None else tiny_data())


def _config(cls: Any, config: AttackConfig | None, **changes: Any) -> AttackConfig:
    base = config if config is not None else cls.config_cls()
    return dataclasses.replace(base, **changes)


def _build(probe: Probe, cls: Any, config: AttackConfig, data: Splits) -> Attack[Any]:
    """The attack for ``config`` on ``data``, its trained parts prepared."""
    probe.config = config
    attack: Attack[Any] = cls(config, image_shape=data.image_shape, num_classes=data.num_classes)
    attack.prepare(data.train)
    return attack


def _mappings(cls: Any) -> tuple[str, ...]:
    """The mappings the class's config declares as choices (not the unsearched ones)."""
    fields = {f.name: f for f in dataclasses.fields(cls.config_cls)}
    rng = fields["mapping"].metadata.get("range")
    return tuple(rng.choices) if rng is not None and rng.choices is not None else ()


def _one_target(cls: Any, data: Splits) -> dict[str, Any]:
    """Config changes for an all-to-one attack on class 3 (or the last class, for fewer)."""
    target = min(3, data.num_classes - 1)
    return {
        "target": target,
        **({"mapping": "all-to-one"} if "all-to-one" in _mappings(cls) else {}),
    }


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def attributes(cls: Any, data: Splits | None = None, config: AttackConfig | None = None) -> None:
    """The class subclasses :class:`Attack`, implements ``stamp``, and declares ``name``,
    ``version``, ``summary`` and ``config_cls``; its name is free in the registry (or its
    own); ``clean_label`` is a bool."""
    with probing(cls, KIND, "attributes") as probe:
        expect_class_attributes(probe, cls, Attack, AttackConfig)
        expect_registry_entry(probe, cls, ATTACKS)
        probe.expect(
            isinstance(cls.clean_label, bool), "`clean_label` a bool", repr(cls.clean_label)
        )


def config_fields(cls: Any, data: Splits | None = None, config: AttackConfig | None = None) -> None:
    """Every config field is searched (``param``) or fixed (``fixed``), each searched default
    inside its range."""
    with probing(cls, KIND, "config_fields") as probe:
        num_classes = data.num_classes if data is not None else tiny_data().num_classes
        expect_config_fields(probe, cls.config_cls, num_classes)


def search_space(cls: Any, data: Splits | None = None, config: AttackConfig | None = None) -> None:
    """Configs sampled from the search space by Optuna round-trip through the trial's
    parameters, differ from each other, and each builds an attack that prepares and stamps a
    batch of the right shape."""
    with probing(cls, KIND, "search_space") as probe:
        data = _data(data)
        for sampled in expect_round_trips(
            probe, cls.config_cls, data.num_classes, SAMPLES, seed=1, base=config
        ):
            attack = _build(probe, cls, sampled, data)
            out = attack.stamp(data.test.x[:4].clone(), _generator())
            probe.expect(
                tuple(out.shape) == (4, *data.image_shape),
                f"stamp to give a batch of shape {(4, *data.image_shape)}",
                f"{tuple(out.shape)}",
            )


def stamp(cls: Any, data: Splits | None = None, config: AttackConfig | None = None) -> None:
    """``stamp`` leaves its input unchanged and gives a batch of the same shape and dtype, in
    ``[0, 1]``, with every image changed by more than :data:`MIN_TRIGGER` somewhere."""
    with probing(cls, KIND, "stamp") as probe:
        data = _data(data)
        attack = _build(probe, cls, _config(cls, config), data)
        x = data.test.x[:20].clone()
        before = x.clone()
        out = attack.stamp(x, _generator())
        changed = int((x != before).flatten(1).any(dim=1).sum())
        probe.expect(
            changed == 0,
            "stamp(x) to leave x unchanged",
            f"{changed} of {len(x)} images of x changed",
        )
        probe.expect(
            isinstance(out, torch.Tensor) and out.shape == x.shape and out.dtype == x.dtype,
            f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}",
            f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))} {getattr(out, 'dtype', '')}",
        )
        low, high = float(out.min()), float(out.max())
        probe.expect(low >= 0.0 and high <= 1.0, "pixels in [0, 1]", f"pixels in [{low}, {high}]")
        moved = (out - x).abs().flatten(1).amax(dim=1)
        bare = int((moved <= MIN_TRIGGER).sum())
        probe.expect(
            bare == 0,
            f"every image to carry a trigger (a pixel changed by more than {MIN_TRIGGER})",
            f"{bare} of {len(x)} images unchanged or nearly so",
        )


def poison_rate(cls: Any, data: Splits | None = None, config: AttackConfig | None = None) -> None:
    """``poison`` stamps ``round(poison_rate * N)`` training images (clean-label attacks: that
    many of the target class at most, and only those), gives each its target label and changes
    no other label, and leaves the training set it was given unchanged."""
    with probing(cls, KIND, "poison_rate") as probe:
        data = _data(data)
        train = data.train
        x0, y0 = train.x.clone(), train.y.clone()
        for rate in RATES:
            attack = _build(
                probe, cls, _config(cls, config, poison_rate=rate, **_one_target(cls, data)), data
            )
            target = attack.config.target
            poisoned = attack.poison(train, _generator())
            probe.expect(
                torch.equal(train.x, x0) and torch.equal(train.y, y0),
                "poison to leave the training set it was given unchanged",
                "its images or labels changed",
            )
            mask = poisoned.poisoned
            probe.expect(
                mask.dtype == torch.bool and tuple(mask.shape) == (len(train),),
                f"`poisoned` a bool mask of shape ({len(train)},)",
                f"{mask.dtype} of shape {tuple(mask.shape)}",
            )
            count = round(rate * len(train))
            if attack.clean_label:
                count = min(count, int((train.y == target).sum()))
                outside = int((train.y[mask] != target).sum())
                probe.expect(
                    outside == 0,
                    f"a clean-label attack to poison images of its target class {target} only",
                    f"{outside} poisoned images of other classes",
                )
            probe.expect(
                int(mask.sum()) == count,
                f"{count} poisoned images (poison_rate {rate} of {len(train)})",
                f"{int(mask.sum())}",
            )
            labels = poisoned.data.y
            probe.expect(
                torch.equal(labels[mask], attack.target_of(train.y[mask])),
                "each poisoned image labelled with target_of(its class)",
                f"labels {labels[mask].tolist()} for classes {train.y[mask].tolist()}",
            )
            kept = int((labels[~mask] != train.y[~mask]).sum())
            probe.expect(kept == 0, "the labels of unpoisoned images unchanged", f"{kept} changed")
            if not attack.clean_label:
                unmoved = int((labels[mask] == train.y[mask]).sum())
                probe.expect(
                    unmoved == 0,
                    "every poisoned image's label to move (to a class other than its own)",
                    f"{unmoved} poisoned images keep their label",
                )
            probe.expect(
                not torch.equal(poisoned.data.x[mask], train.x[mask]),
                "the poisoned images to carry the trigger",
                "the poisoned images are the clean ones",
            )


def deterministic(cls: Any, data: Splits | None = None, config: AttackConfig | None = None) -> None:
    """Two attacks built and prepared alike, given generators of the same seed, poison the same
    images alike and make the same poisoned test set."""
    with probing(cls, KIND, "deterministic") as probe:
        data = _data(data)
        chosen = _config(cls, config)
        a, b = (_build(probe, cls, chosen, data) for _ in range(2))
        pa, pb = (attack.poison(data.train, _generator(5)) for attack in (a, b))
        probe.expect(
            torch.equal(pa.poisoned, pb.poisoned),
            "the same images poisoned for the same generator seed",
            f"{int((pa.poisoned != pb.poisoned).sum())} images differ",
        )
        probe.expect(
            torch.equal(pa.data.x, pb.data.x) and torch.equal(pa.data.y, pb.data.y),
            "the same poisoned training set for the same generator seed",
            "different images or labels",
        )
        ta, tb = (attack.poisoned_test(data.test, _generator(6)) for attack in (a, b))
        probe.expect(
            torch.equal(ta.x, tb.x) and torch.equal(ta.y, tb.y),
            "the same poisoned test set for the same generator seed",
            "different images or labels",
        )


def poisoned_test(cls: Any, data: Splits | None = None, config: AttackConfig | None = None) -> None:
    """Each poisoned test set (``poisoned_test`` and every one of ``poisoned_tests``) holds
    some test images, in ``[0, 1]`` and of the data's shape, each labelled with one of the
    attack's ``target_labels()``."""
    with probing(cls, KIND, "poisoned_test") as probe:
        data = _data(data)
        attack = _build(probe, cls, _config(cls, config), data)
        targets = attack.target_labels()
        sets = {"poisoned_test": attack.poisoned_test(data.test, _generator())}
        sets.update(
            (f"poisoned_tests[{k!r}]", v)
            for k, v in attack.poisoned_tests(data.test, _generator()).items()
        )
        for name, split in sets.items():
            probe.expect(
                0 < len(split) <= len(data.test),
                f"{name} to hold between 1 and {len(data.test)} images",
                f"{len(split)}",
            )
            probe.expect(
                tuple(split.x.shape[1:]) == data.image_shape,
                f"{name}'s images of shape {data.image_shape}",
                f"{tuple(split.x.shape[1:])}",
            )
            low, high = float(split.x.min()), float(split.x.max())
            probe.expect(low >= 0 and high <= 1, f"{name}'s pixels in [0, 1]", f"[{low}, {high}]")
            labels = set(split.y.tolist())
            probe.expect(
                labels <= targets,
                f"{name}'s labels among target_labels() {sorted(targets)}",
                f"{sorted(labels)}",
            )


def target_class_left_out(
    cls: Any, data: Splits | None = None, config: AttackConfig | None = None
) -> None:
    """All-to-one: the poisoned test set is every test image not of the target class, each
    labelled with the target. Not for attacks with targets of their own (neither
    clean-label nor offering ``multi-target``)."""
    if "multi-target" not in _mappings(cls) and not cls.clean_label:
        raise NotApplicable(f"{cls.name} has targets of its own")
    with probing(cls, KIND, "target_class_left_out") as probe:
        data = _data(data)
        target = min(2, data.num_classes - 1)
        attack = _build(probe, cls, _config(cls, config, target=target, mapping="all-to-one"), data)
        test = attack.poisoned_test(data.test, _generator())
        others = int((data.test.y != target).sum())
        probe.expect(
            len(test) == others,
            f"the {others} test images not of the target class {target}",
            f"{len(test)} images",
        )
        probe.expect(
            bool((test.y == target).all()),
            f"every label the target {target}",
            f"labels {sorted(set(test.y.tolist()))}",
        )


def all_to_all(cls: Any, data: Splits | None = None, config: AttackConfig | None = None) -> None:
    """All-to-all: every test image is in the poisoned test set, class ``y`` labelled ``y + 1``.
    Only for attacks whose config offers the ``all-to-all`` mapping."""
    if "all-to-all" not in _mappings(cls):
        raise NotApplicable(f"{cls.name} has one target (clean-label) or targets of its own")
    with probing(cls, KIND, "all_to_all") as probe:
        data = _data(data)
        attack = _build(probe, cls, _config(cls, config, mapping="all-to-all"), data)
        test = attack.poisoned_test(data.test, _generator())
        expected = (data.test.y + 1) % data.num_classes
        probe.expect(
            len(test) == len(data.test),
            f"all {len(data.test)} test images in the poisoned test set",
            f"{len(test)} images",
        )
        wrong = int((test.y != expected).sum())
        probe.expect(
            wrong == 0,
            f"class y labelled (y + 1) mod {data.num_classes}",
            f"{wrong} of {len(test)} images labelled otherwise",
        )


def multi_target(cls: Any, data: Splits | None = None, config: AttackConfig | None = None) -> None:
    """Multi-target: the classes are shared out among the targets ``target``, ``target + 1``
    and ``target + 2`` (class ``y`` to ``target + y mod 3``), and no class is sent to itself.
    Only for attacks whose config offers the ``multi-target`` mapping."""
    if "multi-target" not in _mappings(cls):
        raise NotApplicable(f"{cls.name} has targets of its own")
    with probing(cls, KIND, "multi_target") as probe:
        data = _data(data)
        n = data.num_classes
        target = max(0, n - 2)
        attack = _build(
            probe, cls, _config(cls, config, mapping="multi-target", target=target), data
        )
        test = attack.poisoned_test(data.test, _generator())
        source = data.test.y[attack.eligible(data.test.y)]
        expected = (target + source % MULTI_TARGETS) % n
        probe.expect(
            len(test) == len(source) and torch.equal(test.y, expected),
            f"the {len(source)} eligible test images, class y labelled "
            f"({target} + y mod {MULTI_TARGETS}) mod {n}",
            f"{len(test)} images labelled {sorted(set(test.y.tolist()))}",
        )
        shared = {(target + k) % n for k in range(MULTI_TARGETS)}
        probe.expect(
            set(test.y.tolist()) == shared,
            f"the labels {sorted(shared)}, no single one collecting the backdoor",
            f"{sorted(set(test.y.tolist()))}",
        )
        probe.expect(bool((test.y != source).all()), "no class sent to itself", "some are")


def choices(cls: Any, data: Splits | None = None, config: AttackConfig | None = None) -> None:
    """A value outside a field's declared choices is refused with a ``ValueError`` naming the
    field (the attack base does this unless a subclass gets in its way)."""
    with probing(cls, KIND, "choices") as probe:
        shape = data if data is not None else tiny_data()

        def build(c: Any) -> object:
            return cls(c, image_shape=shape.image_shape, num_classes=shape.num_classes)

        expect_choices_refused(probe, cls.config_cls, _config(cls, config), build)


AttackCheck = Callable[[Any, Splits | None, AttackConfig | None], None]

CHECKS: tuple[AttackCheck, ...] = (
    attributes,
    config_fields,
    choices,
    search_space,
    stamp,
    poison_rate,
    deterministic,
    poisoned_test,
    target_class_left_out,
    all_to_all,
    multi_target,
)
"""Every attack check, in the order the suite runs them."""


def attack_checks(
    cls: Any, data: Splits | None = None, *, config: AttackConfig | None = None
) -> list[Check]:
    """Every check of ``cls`` as ``(name, run)`` pairs: ``run()`` takes no argument and returns
    ``None``, or raises :class:`ContractError` (or :class:`NotApplicable` for a check that does
    not apply). Nothing runs, and no data loads, until a ``run`` is called."""
    return [Check(c.__name__, functools.partial(c, cls, data, config)) for c in CHECKS]


def check_attack(
    cls: Any, data: Splits | None = None, *, config: AttackConfig | None = None
) -> Report:
    """Run every check on attack class ``cls``: one :class:`ContractError` lists every check it
    fails, else the :class:`Report` says which passed and which did not apply."""
    return run_checks(describe(cls, KIND), attack_checks(cls, data, config=config))


def attack_suite(
    cls: Any, data: Splits | None = None, *, config: AttackConfig | None = None
) -> list[Any]:
    """The checks of ``cls`` as ``pytest.param``s, for ``@pytest.mark.parametrize``; a check
    that does not apply is skipped (pytest is imported by this function only)."""
    return pytest_params(attack_checks(cls, data, config=config))
