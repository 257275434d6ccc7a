"""Valid domains beside search ranges: every numeric config field declares what it can take; a
config refuses anything else when it is built, and accepts a valid value outside the search
range with one warning. Gates, budgets and the data seed are checked likewise."""

from __future__ import annotations

import dataclasses
import logging
import math
import typing
from typing import Any

import pytest

import arena.core.config as config_module
from arena.cell.setting import Gates
from arena.core.config import LAST_CLASS, Valid, searchable_fields
from arena.core.overrides import apply_overrides
from arena.core.train import TrainConfig
from arena.data import DataRef
from arena.game.budget import Budget
from strategies import ATTACKS, DEFENSES
from strategies.attacks.badnets import BadNetsConfig
from strategies.attacks.mtmta import MTMTAConfig
from strategies.defenses.strip import StripConfig

CONFIGS = [
    *(pytest.param(cls.config_cls, id=f"attack-{name}") for name, cls in sorted(ATTACKS.items())),
    *(pytest.param(cls.config_cls, id=f"defense-{n}") for n, cls in sorted(DEFENSES.items())),
    pytest.param(TrainConfig, id="train"),
]


def numeric_fields(config_cls: type) -> list[tuple[dataclasses.Field[Any], type]]:
    hints = typing.get_type_hints(config_cls)
    return [
        (f, hints[f.name]) for f in dataclasses.fields(config_cls) if hints[f.name] in (int, float)
    ]


def valued(config_cls: type) -> list[tuple[dataclasses.Field[Any], type, Valid]]:
    return [
        (f, t, f.metadata["valid"]) for f, t in numeric_fields(config_cls) if "valid" in f.metadata
    ]


def just_outside(valid: Valid, kind: type) -> list[float]:
    """Values a step beyond each finite end of ``valid``."""
    step = 1 if kind is int else 1e-6
    out: list[float] = []
    if valid.low is not None:
        out.append(valid.low if valid.low_open else valid.low - step)
    if valid.high is not None:
        out.append(valid.high if valid.high_open else valid.high + step)
    return [int(v) if kind is int else v for v in out]


@pytest.mark.parametrize("config_cls", CONFIGS)
def test_every_numeric_field_declares_a_domain_holding_default_and_range(config_cls: type) -> None:
    ranges = {f.name: rng for f, rng in searchable_fields(config_cls)}
    for f, _ in numeric_fields(config_cls):
        rng = ranges.get(f.name)
        if "valid" not in f.metadata:
            # a categorical field: its choices are its domain (checked by the strategy bases)
            assert rng is not None and rng.choices is not None, f"{f.name} declares no domain"
            continue
        valid = f.metadata["valid"]
        assert valid.contains(f.default), f.name
        if rng is not None and rng.choices is not None:
            assert all(valid.contains(c) for c in rng.choices), f.name
        elif rng is not None:
            assert rng.low is not None and rng.high is not None
            assert valid.contains(rng.low), f.name
            assert rng.high == LAST_CLASS or valid.contains(rng.high), f.name


@pytest.mark.parametrize("config_cls", CONFIGS)
def test_values_just_outside_the_domain_are_refused_naming_the_field(config_cls: type) -> None:
    for f, kind, valid in valued(config_cls):
        for value in just_outside(valid, kind):
            with pytest.raises(ValueError, match=rf"{config_cls.__name__}: {f.name}="):
                config_cls(**{f.name: value})


@pytest.mark.parametrize("config_cls", CONFIGS)
def test_nan_infinities_and_wrong_types_are_refused(config_cls: type) -> None:
    for f, kind, _ in valued(config_cls):
        bad: list[Any] = [math.nan, math.inf, -math.inf, True, "1"]
        if kind is int:
            bad.append(float(f.default) + 0.5)
        for value in bad:
            with pytest.raises(ValueError, match=rf"{f.name}="):
                config_cls(**{f.name: value})


@pytest.mark.parametrize("config_cls", CONFIGS)
def test_valid_values_outside_the_search_range_warn_once(
    config_cls: type, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_module, "_warned", set())  # forget warnings of earlier tests
    ranges = {f.name: rng for f, rng in searchable_fields(config_cls)}
    tried = 0
    for f, kind, valid in valued(config_cls):
        rng = ranges.get(f.name)
        if rng is None or rng.choices is not None:
            continue
        assert rng.low is not None and rng.high is not None
        candidates = [rng.low - 1 if kind is int else rng.low / 2]
        if rng.high != LAST_CLASS:
            candidates.append(rng.high + 1 if kind is int else rng.high * 1.5)
        for value in candidates:
            if not valid.contains(value) or rng.low <= value <= rng.high:
                continue
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="arena.core.config"):
                config = config_cls(**{f.name: value})
                assert caplog.records == []  # a config a strategy builds for itself: no word
                item = f"{f.name}={value}"
                assert apply_overrides(config_cls(), [item], "x") == config  # a user's value
                apply_overrides(config_cls(), [item], "x")  # the same again: no second warning
            assert getattr(config, f.name) == value
            lines = [r.getMessage() for r in caplog.records]
            assert len(lines) == 1, lines
            assert f"{f.name}={value!r}" in lines[0] and "search range" in lines[0]
            tried += 1
    assert tried > 0 or not any(
        rng.choices is None for f, rng in searchable_fields(config_cls) if "valid" in f.metadata
    )


def test_defaults_and_search_range_values_build_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="arena.core.config"):
        for cls in [
            *(a.config_cls for a in ATTACKS.values()),
            *(d.config_cls for d in DEFENSES.values()),
        ]:
            cls()
        TrainConfig()
        BadNetsConfig(poison_rate=0.3, size=0.1)
    assert caplog.records == []


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: BadNetsConfig(poison_rate=-0.1), "poison_rate"),
        (lambda: BadNetsConfig(poison_rate=2), "poison_rate"),
        (lambda: BadNetsConfig(poison_rate=0.0), "poison_rate"),
        (lambda: BadNetsConfig(size=5), "size"),
        (lambda: BadNetsConfig(target=-1), "target"),
        (lambda: TrainConfig(batch_size=0), "batch_size"),
        (lambda: TrainConfig(epochs=-1), "epochs"),
        (lambda: TrainConfig(lr=math.inf), "lr"),
        (lambda: TrainConfig(lr=0.0), "lr"),
        (lambda: TrainConfig(epochs=2.5), "epochs"),
        (lambda: TrainConfig(optimizer="rmsprop"), "optimizer"),
        (lambda: StripConfig(overlays=0), "overlays"),
    ],
)
def test_the_reported_cases_are_refused(build: Any, field: str) -> None:
    with pytest.raises(ValueError, match=rf"Config: {field}=.* is not"):
        build()


def test_the_message_is_one_line_with_the_domain() -> None:
    with pytest.raises(ValueError) as info:
        BadNetsConfig(poison_rate=-0.1)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("BadNetsConfig: poison_rate=-0.1 is not a finite number in (0, 1]")


def test_mtmta_keeps_its_unsearched_all_to_all_mapping() -> None:
    attack = ATTACKS["mtmta"](
        MTMTAConfig(mapping="all-to-all"), image_shape=(3, 16, 16), num_classes=10
    )
    assert attack.config.mapping == "all-to-all"


def test_internal_recipes_outside_the_search_choices_are_valid() -> None:
    # fine-tuning defenses train with no epochs, and generators with other batch sizes
    assert TrainConfig(epochs=0, batch_size=17).batch_size == 17


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delta_attack": -1.0}, r"--delta-attack -1\.0 is not a finite number in \[0, 1\]"),
        ({"delta_defense": 1.5}, r"--delta-defense 1\.5 is not"),
        ({"frr_budget": math.nan}, r"--frr-budget nan is not"),
        ({"frr_budget": math.inf}, r"--frr-budget inf is not"),
    ],
)
def test_gates_are_shares(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Gates(**kwargs)


def test_gates_at_their_ends_are_valid() -> None:
    assert Gates(0.0, 1.0, 0).frr_budget == 0


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"rounds": 0}, "--rounds"),
        ({"attacker_trials": 0}, "--attacker-trials"),
        ({"defender_trials": 2.5}, "--defender-trials"),
        ({"seeds": True}, "--seeds"),
        ({"ci_seeds": -1}, "--ci-seeds"),
        ({"epsilon": math.nan}, "--epsilon"),
        ({"epsilon": -0.1}, "--epsilon"),
        ({"epsilon": math.inf}, "--epsilon"),
    ],
)
def test_budget_refuses_bad_values_naming_the_flag(kwargs: dict[str, Any], flag: str) -> None:
    base: dict[str, Any] = {
        "rounds": 2,
        "attacker_trials": 4,
        "defender_trials": 3,
        "epsilon": 0.02,
    }
    with pytest.raises(ValueError, match=rf"^{flag} .* is not"):
        Budget(**{**base, **kwargs})


def test_budget_takes_no_interval_and_a_zero_gap() -> None:
    assert Budget(rounds=1, attacker_trials=1, defender_trials=1, epsilon=0, ci_seeds=0).rounds == 1


@pytest.mark.parametrize("seed", [2**70, 2**32, -1, 1.0, True])
def test_data_seed_fits_every_generator(seed: Any) -> None:
    with pytest.raises(ValueError, match=r"data seed .* is not an integer in \[0, 4294967295\]"):
        DataRef(seed=seed)
    assert DataRef(seed=2**32 - 1).seed == 2**32 - 1


def test_cli_refuses_a_bad_rate_before_any_training(capsys: pytest.CaptureFixture[str]) -> None:
    from arena.cli.app import main

    code = main(["evaluate", "--attacker", "badnets", "-A", "poison_rate=-0.1", "--limit", "60"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "poison_rate=-0.1" in err[0], err
