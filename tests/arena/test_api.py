"""The Python API (arena/api/): docs/python-api.md run as written, and what the page shows
checked against the command line, the storage and ``duel.json``.

The page runs once per module in a folder of its own (its relative paths, ``runs/...``, land
there), on the session's ``ray_local``; the other tests reuse what it made, so the cells they
score come from its cache and the duel they read is its duel.
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

import arena.core.train
import arena.plugins
from arena.api import (
    TRIAL_COLUMNS,
    Cell,
    DuelOutcome,
    evaluate,
    override_items,
    players,
)
from arena.api.duels import _study_place
from arena.cli.app import build_parser, main
from arena.data import DataRef
from strategies import ATTACKS
from studies.storage import open_storage

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "python-api.md"


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line, code)`` of each ```python block of a Markdown page, in order (``line``: the
    page's line of the block's first line of code, counted from 1)."""
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        blocks.append((text.count("\n", 0, match.start(1)) + 1, match.group(1)))
    return blocks


@dataclass
class Page:
    """Where the page ran and what its session left in its namespace."""

    root: Path
    names: dict[str, Any]


@pytest.fixture(scope="module")
def page(ray_local: Any, tmp_path_factory: pytest.TempPathFactory) -> Page:
    root = tmp_path_factory.mktemp("python-api")
    names: dict[str, Any] = {"__name__": "python_api_page"}
    blocks = python_blocks(PAGE.read_text())
    assert len(blocks) >= 8, "the page lost its code blocks"
    previous = torch.get_num_threads()
    # the page loads a plugin of its own: it leaves the registries as they were
    with pytest.MonkeyPatch.context() as mp, arena.plugins.isolated():
        mp.setenv(arena.plugins.ENV, "")
        mp.chdir(root)
        # one training thread, as the one_thread fixture gives a test (two busy cores)
        torch.set_num_threads(1)
        mp.setattr(arena.core.train, "set_threads", lambda: 1)
        try:
            for line, code in blocks:
                # padded so that a traceback names the page's own line
                exec(compile("\n" * (line - 1) + code, str(PAGE), "exec"), names)
        finally:
            torch.set_num_threads(previous)
    return Page(root, names)


def test_the_page_runs_as_written(page: Page) -> None:
    cell, outcome = page.names["cell"], page.names["outcome"]
    assert isinstance(cell, Cell) and isinstance(outcome, DuelOutcome)
    out = page.root / outcome.out
    assert {p.name for p in out.iterdir()} >= {
        "duel.json", "report.md", "payoff_matrix.png", "bounds.png"
    }  # fmt: skip
    assert (page.root / "runs" / "arena.db").is_file() and (page.root / "runs" / "cache").is_dir()
    assert outcome.lower_bound - 1e-9 <= outcome.value <= outcome.upper_bound + 1e-9


def test_a_cell_is_what_arena_evaluate_json_prints(
    page: Page, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(page.root)  # the page's cache: both read the models it trained
    capsys.readouterr()
    argv = ["evaluate", "--attacker", "badnets", "--defender", "strip", "--limit", "60", "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    mine = evaluate("badnets", "strip", limit=60).to_dict()
    assert mine["gates"]["cached"] == printed["gates"]["cached"] == {
        "clean_model": True, "badnet": True
    }  # fmt: skip
    # the same record, but for the wall and CPU seconds of each phase, which vary
    for timing in ("seconds", "cpu_seconds"):
        assert set(mine.pop(timing)) == set(printed.pop(timing))
    assert mine == printed
    assert mine["payoff"] == page.names["cell"].payoff


def test_an_unknown_attacker_lists_the_known_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for call in (lambda: evaluate("nope"), lambda: arena.duel("nope", "strip")):
        with pytest.raises(ValueError, match="'nope'") as error:
            call()
        assert all(name in str(error.value) for name in ATTACKS)
    assert list(tmp_path.iterdir()) == []  # refused before any work: no cache, no storage


def test_parameters_as_a_mapping_or_as_key_value_strings_are_the_same() -> None:
    given = {"strip": {"overlays": 8}, "bdmae.threshold": 0.5}
    assert override_items(given) == ["strip.overlays=8", "bdmae.threshold=0.5"]
    assert override_items("size=0.2") == ["size=0.2"] and override_items(None) is None
    as_dicts = players(
        "badnets",
        "strip+bdmae",
        attack_params={"poison_rate": 0.2},
        train_params={"epochs": 3},
        defense_params={"strip": {"overlays": 8}},
    )
    as_strings = players(
        "badnets",
        "strip+bdmae",
        attack_params=["poison_rate=0.2"],
        train_params=["epochs=3"],
        defense_params=["strip.overlays=8"],
    )
    assert as_dicts == as_strings
    attacker, defender = as_dicts
    assert attacker.attack.poison_rate == 0.2 and attacker.recipe.epochs == 3
    assert defender.stages[0][1].overlays == 8


def test_the_duel_frames(page: Page) -> None:
    outcome: DuelOutcome = page.names["outcome"]
    record = outcome.to_dict()
    assert record == json.loads((page.root / outcome.out / "duel.json").read_text())

    matrix = outcome.payoff_matrix()
    m = record["payoff_matrix"]
    assert matrix.shape == (len(m["attackers"]), len(m["defenders"]))
    assert list(matrix.index) == m["attackers"] and list(matrix.columns) == m["defenders"]
    assert (matrix.index.name, matrix.columns.name) == ("attacker", "defender")
    assert matrix.to_numpy().tolist() == m["values"]

    trials = outcome.trials()
    assert tuple(trials.columns) == TRIAL_COLUMNS
    storage = open_storage(outcome.storage, create=False)
    studies = [s.study_name for s in storage.get_all_studies()]
    ours = [s for s in studies if _study_place(outcome.name, s) is not None]
    assert len(ours) == 2 * len(record["rounds"])  # one per side and round; not the lease
    stored = sum(len(optuna.load_study(study_name=s, storage=storage).trials) for s in ours)
    assert len(trials) == stored >= 2 + 2
    assert set(trials["side"]) == {"attacker", "defender"} and not trials["audit"].any()
    assert list(trials["round"].unique()) == [1]
    complete = trials[trials["state"] == "COMPLETE"]
    assert complete["value"].between(0, 1).all() and complete["strategy"].notna().all()
    assert all(isinstance(p, dict) and p for p in trials["params"])
    defender = outcome.trials(side="defender")
    assert len(defender) == (trials["side"] == "defender").sum() and set(defender["side"]) == {
        "defender"
    }  # fmt: skip
    with pytest.raises(ValueError, match="side"):
        outcome.trials(side="both")  # type: ignore[arg-type]

    rounds = outcome.rounds()
    assert len(rounds) == len(record["rounds"])
    assert {"round", "value", "lower_bound", "upper_bound", "gap"} <= set(rounds.columns)
    assert rounds["gap"].iloc[-1] == pytest.approx(outcome.exploitability)


def test_study_names_place_a_trial() -> None:
    assert _study_place("d-1", "d-1/r03/attacker") == (3, "attacker")
    assert _study_place("d-1", "d-1/audit/defender") == (None, "defender")
    for other in ("d-1/lease", "d-1/audit/lease", "d-12/r01/attacker", "d-1/r01/judge"):
        assert _study_place("d-1", other) is None


def test_the_package_loads_the_api_on_first_use() -> None:
    code = """
import sys
import arena, arena.core.config
assert "arena.api" not in sys.modules and "torch" not in sys.modules, "imported early"
assert {"evaluate", "duel", "Cell", "DuelOutcome"} <= set(dir(arena)) and arena.__all__
from_package = arena.evaluate
import arena.api
assert from_package is arena.api.evaluate and arena.DuelOutcome is arena.api.DuelOutcome
try:
    arena.nope
except AttributeError as e:
    assert "nope" in str(e)
else:
    raise AssertionError("arena.nope")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_defaults_are_the_commands() -> None:
    from arena.api import duel

    parser = build_parser()
    for function, argv in (
        (evaluate, ["evaluate", "--attacker", "badnets"]),
        (duel, ["duel", "--attacker", "badnets", "--defender", "strip"]),
    ):
        args = vars(parser.parse_args(argv))
        args["dataset"] = args["dataset"] or DataRef().name  # unset on the command line
        for name, p in inspect.signature(function).parameters.items():
            if p.default is not inspect.Parameter.empty and name in args:
                assert p.default == args[name], (function.__name__, name)
