"""The contract suite that authors of attacks and defenses run on their classes
(:mod:`arena.testing`): Arena's own strategies pass it, a small attack and defense written as an
author would (outside the registry) pass it, and classes broken on purpose fail it, each with
one error that names the class and the check."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from arena.core.config import AT_LEAST_ONE, UNIT, param
from arena.core.infer import logits
from arena.data.splits import Split
from arena.testing import (
    ContractError,
    Report,
    attack_checks,
    attack_suite,
    check_attack,
    check_defense,
    defense_checks,
    defense_suite,
    tiny_data,
)
from arena.testing.attacks import CHECKS as ATTACK_CHECKS
from arena.testing.defenses import CHECKS as DEFENSE_CHECKS
from strategies import attack_class, defense_class
from strategies.attacks import Attack, AttackConfig
from strategies.defenses import Defense, DefenseConfig, Deployment

# the checks train (the default model, fine-tuning defenses): one thread, as on two busy cores
pytestmark = pytest.mark.usefixtures("one_thread")

# --- an attack and a defense written as an author would, and broken copies of them ---


@dataclass(frozen=True)
class CornerConfig(AttackConfig):
    size: int = param(3, low=2, high=5, valid=AT_LEAST_ONE, help="side of the white square")


class Corner(Attack[CornerConfig]):
    """A white square in the bottom-right corner."""

    name = "test-corner"
    version = 1
    summary = "a white square in the corner"
    config_cls = CornerConfig

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out = x.clone()
        out[..., -self.config.size :, -self.config.size :] = 1.0
        return out


class MutatingStamp(Corner):
    name = "test-mutating-stamp"

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x[..., -self.config.size :, -self.config.size :] = 1.0  # on the caller's images
        return x


class IgnoresRate(Corner):
    name = "test-ignores-rate"

    def poison(self, train: Split, generator: torch.Generator) -> Any:
        rate = self.config.poison_rate
        self.config = dataclasses.replace(self.config, poison_rate=1.0)  # every eligible image
        try:
            return super().poison(train, generator)
        finally:
            self.config = dataclasses.replace(self.config, poison_rate=rate)


class TakenName(Corner):
    name = "badnets"  # a built-in's


@dataclass(frozen=True)
class ConfidenceConfig(DefenseConfig):
    frr_target: float = param(
        0.05, low=0.01, high=0.2, valid=UNIT, help="share of clean data the threshold rejects"
    )


@dataclass
class ConfidenceDeployment(Deployment):
    threshold: float = 0.0

    def accept(self, x: torch.Tensor) -> torch.Tensor:
        return logits(self.model, x).softmax(dim=1).amax(dim=1) >= self.threshold


class Confidence(Defense[ConfidenceConfig]):
    """Reject inputs the model is unsure of."""

    name = "test-confidence"
    version = 1
    summary = "reject inputs of low top-class probability"
    kind = "filter"
    access = "black-box"
    config_cls = ConfidenceConfig

    def fit_copy(self, model: nn.Module, clean: Split) -> Deployment:
        confidence = logits(model, clean.x).softmax(dim=1).amax(dim=1)
        threshold = float(torch.quantile(confidence, self.config.frr_target))
        return ConfidenceDeployment(model, details={"threshold": threshold}, threshold=threshold)


class Meddling(Confidence):
    name = "test-meddling"

    def fit(self, model: nn.Module, clean: Split) -> Deployment:
        with torch.no_grad():
            next(model.parameters()).mul_(0.5)  # the caller's model, not a copy
        return super().fit(model, clean)


class Jittery(Confidence):
    name = "test-jittery"

    def fit_copy(self, model: nn.Module, clean: Split) -> Deployment:
        deployed = super().fit_copy(model, clean)
        deployed.details["threshold"] += float(torch.rand(1)) * 1e-3  # unseeded
        return deployed


# --- Arena's own strategies pass ---

ONE_TARGET = {"all_to_all", "multi_target"}


@pytest.mark.parametrize(
    ("name", "skipped"),
    [("badnets", set()), ("wanet", set()), ("sig", ONE_TARGET)],
    ids=["badnets", "wanet", "sig"],
)
def test_builtin_attacks_pass(name: str, skipped: set[str]) -> None:
    report = check_attack(attack_class(name))
    assert isinstance(report, Report)
    assert set(report.skipped) == skipped
    assert set(report.passed) == {c.__name__ for c in ATTACK_CHECKS} - skipped


@pytest.mark.parametrize(
    ("name", "changes"),
    [("strip", {"overlays": 8}), ("fine-pruning", {"epochs": 2}), ("shrinkpad", {})],
    ids=["strip", "fine-pruning", "shrinkpad"],
)
def test_builtin_defenses_pass(name: str, changes: dict[str, Any]) -> None:
    cls = defense_class(name)
    report = check_defense(cls, config=dataclasses.replace(cls.config_cls(), **changes))
    black_box = {"white_box_needs_arena_net"} if cls.access == "black-box" else set()
    assert set(report.skipped) == black_box
    assert set(report.passed) == {c.__name__ for c in DEFENSE_CHECKS} - black_box


# --- an author's classes, through the pytest helpers, as an author's test file would ---


@pytest.mark.parametrize("check", attack_suite(Corner))
def test_an_authors_attack_keeps_the_contract(check: Any) -> None:
    check()


@pytest.mark.parametrize("check", defense_suite(Confidence))
def test_an_authors_defense_keeps_the_contract(check: Any) -> None:
    check()


def test_the_pytest_helpers_name_each_check_and_skip_what_does_not_apply() -> None:
    params = {p.id: p.values[0] for p in attack_suite(attack_class("sig"))}
    assert list(params) == [c.__name__ for c in ATTACK_CHECKS]
    with pytest.raises(pytest.skip.Exception, match="sig has one target"):
        params["all_to_all"]()
    assert [p.id for p in defense_suite(Confidence)] == [c.__name__ for c in DEFENSE_CHECKS]


def test_checks_come_as_name_and_callable_pairs_that_load_nothing_until_run() -> None:
    pairs = attack_checks(MutatingStamp) + defense_checks(Meddling)
    assert all(isinstance(name, str) and callable(run) for name, run in pairs)
    run = dict(attack_checks(MutatingStamp))["stamp"]
    with pytest.raises(ContractError, match="stamp"):
        run()


# --- classes broken on purpose fail, naming the class and the check ---


def failed(error: pytest.ExceptionInfo[ContractError]) -> set[str]:
    return {f.check for f in error.value.failures}


def test_a_stamp_that_changes_its_input_fails_the_stamp_check() -> None:
    digest = tiny_data().test.x.sum().item()
    with pytest.raises(ContractError) as error:
        check_attack(MutatingStamp)
    assert failed(error) == {"stamp"}
    message = str(error.value)
    assert message.startswith("MutatingStamp (attack 'test-mutating-stamp') fails 1 contract check")
    assert (
        "- stamp, with CornerConfig(poison_rate=0.1, target=0, mapping='all-to-one', size=3)"
        in message
    )
    assert "expected stamp(x) to leave x unchanged; got 20 of 20 images of x changed" in message
    assert tiny_data().test.x.sum().item() == digest, "the checks' shared data is never touched"


def test_an_attack_that_ignores_the_poison_rate_fails_the_poison_rate_check() -> None:
    with pytest.raises(AssertionError) as error:  # a ContractError is an AssertionError
        check_attack(IgnoresRate)
    assert isinstance(error.value, ContractError)
    assert failed(error) == {"poison_rate"}
    message = str(error.value)
    assert "IgnoresRate (attack 'test-ignores-rate')" in message
    assert "poison_rate, with CornerConfig(poison_rate=0.05, target=3" in message
    assert "expected 8 poisoned images (poison_rate 0.05 of 150); got " in message


def test_a_name_taken_by_a_builtin_fails_the_attributes_check() -> None:
    with pytest.raises(ContractError) as error:
        check_attack(TakenName)
    assert failed(error) == {"attributes"}
    assert "registered to strategies.attacks.badnets.BadNets" in str(error.value)


def test_a_defense_that_changes_the_model_fails_the_mutation_check() -> None:
    with pytest.raises(ContractError) as error:
        check_defense(Meddling)
    assert failed(error) == {"never_mutates_model"}
    message = str(error.value)
    assert message.startswith("Meddling (defense 'test-meddling') fails 1 contract check")
    assert "expected the model's weights and buffers unchanged; got ['" in message


def test_an_unseeded_defense_fails_the_determinism_check() -> None:
    state = torch.get_rng_state()
    with pytest.raises(ContractError) as error:
        check_defense(Jittery)
    assert failed(error) == {"deterministic"}
    message = str(error.value)
    assert "Jittery (defense 'test-jittery')" in message
    assert (
        "- deterministic, with ConfidenceConfig(frr_target=0.05): expected the same details"
        in message
    )
    assert torch.equal(torch.get_rng_state(), state), "the checks leave torch's random state"


def test_one_error_lists_every_failed_check() -> None:
    class Both(MutatingStamp, IgnoresRate):
        name = "test-both"

    with pytest.raises(ContractError) as error:
        check_attack(Both)
    assert failed(error) == {"stamp", "poison_rate"}
    assert "fails 2 contract checks (stamp, poison_rate)" in str(error.value)


def test_the_suite_imports_without_pytest() -> None:
    code = "import sys; sys.modules['pytest'] = None; import arena.testing; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
