"""The contract suite for attack and defense classes, importable by their authors.

Arena's own attacks and defenses pass a shared suite (``tests/strategies/``): configs that
round-trip through their search space, triggers that change every image and never their input,
poison rates honoured and labels mapped, defenses that never change the model they are given
and give the same deployment for the same seed. This package runs the same checks on a class
written anywhere (a plugin's package, a notebook), on tiny data and a small trained model, in
seconds. The class need not be registered.

``check_attack(cls)`` and ``check_defense(cls)`` run every check and raise one
:class:`ContractError` (an ``AssertionError``) that lists each failed check, the config it
tried, what the contract expects and what happened; on success they return a :class:`Report`
of the checks passed and those that do not apply (an attack with one target has no all-to-all
check). ``attack_checks(cls)`` and ``defense_checks(cls)`` give the checks one by one as
``(name, run)`` pairs, and ``attack_suite(cls)`` and ``defense_suite(cls)`` as
``pytest.param``s (checks that do not apply become skips). An author's test file::

    import pytest

    from arena.testing import attack_suite, check_defense, defense_suite
    from my_package import MyAttack, MyDefense, MyDefenseConfig

    @pytest.mark.parametrize("check", attack_suite(MyAttack))
    def test_my_attack_keeps_the_contract(check):
        check()

    # the same for a defense, with small budgets so that the checks run in seconds
    @pytest.mark.parametrize("check", defense_suite(MyDefense, config=MyDefenseConfig(steps=20)))
    def test_my_defense_keeps_the_contract(check):
        check()

    def test_all_at_once():  # or: one test, one error listing every failure
        report = check_defense(MyDefense)
        assert "deterministic" in report.passed

Both suites take ``data`` (a :class:`arena.data.Splits`; by default :func:`tiny_data`, digits
with 150 images a split) and ``config`` (the config the checks start from; by default the
class's default config). The defense suite also takes ``model`` (by default
:func:`tiny_model`, a ``small-cnn`` trained for a few epochs on the data, once per process).
Each check works on copies of the data and the model, and leaves torch's global random state as
it found it. Importing this package does not import pytest.

The checks themselves are in :mod:`arena.testing.attacks` and :mod:`arena.testing.defenses`
(``CHECKS`` in each), the machinery they share in :mod:`arena.testing.contract`.
"""

from __future__ import annotations

from arena.testing.attacks import attack_checks, attack_suite, check_attack
from arena.testing.contract import (
    Check,
    ContractError,
    Failure,
    NotApplicable,
    Report,
    tiny_data,
    tiny_model,
)
from arena.testing.defenses import check_defense, defense_checks, defense_suite

__all__ = [
    "Check",
    "ContractError",
    "Failure",
    "NotApplicable",
    "Report",
    "attack_checks",
    "attack_suite",
    "check_attack",
    "check_defense",
    "defense_checks",
    "defense_suite",
    "tiny_data",
    "tiny_model",
]
