"""The command line, in-process: help, the catalog, one-line user errors (exit 2), and one
real evaluate / train / defend on tiny data."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from arena.cell.provenance import SCHEMA_VERSION
from arena.cell.result import CELL_KEYS
from arena.cli.app import main
from arena.core.model_files import load_model
from arena.data import DATASETS
from arena.models import MODELS
from strategies import ATTACKS, DEFENSES

RATES = ("ca", "asr", "sda", "sasr", "far", "frr")


pytestmark = pytest.mark.usefixtures("one_thread")


def _user_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``argv``, expect exit 2 and one line on stderr; return that line."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"arena {argv[0]}: error: ")
    return lines[0]


def check_stamp(record: dict, seeds: list[int] | None = None, data: bool = True) -> None:
    """``record`` carries the schema version and where its numbers came from."""
    assert record["schema_version"] == SCHEMA_VERSION
    prov = record["provenance"]
    assert prov["arena"]["version"] and "commit" in prov["arena"]
    for lib in ("torch", "optuna", "ray"):
        assert prov["libraries"][lib], lib
    assert prov["plugins"] == {}  # Arena's own strategies only
    if data:
        assert prov["data"]["name"] == "digits" and len(prov["data"]["digest"]) == 64
    else:
        assert "data" not in prov
    assert prov.get("seeds") == seeds


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for command in ("list", "evaluate", "train", "defend"):
        assert command in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "usage: arena" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["evaluate", "train", "defend"])
def test_command_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert f"usage: arena {command}" in capsys.readouterr().out


def test_list_json_names_everything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    cat = json.loads(capsys.readouterr().out)
    check_stamp(cat, data=False)
    assert set(cat["attacks"]) == set(ATTACKS)
    assert set(cat["defenses"]) == set(DEFENSES)
    assert set(cat["models"]) == set(MODELS)
    assert set(cat["datasets"]) == set(DATASETS)
    for part in ("attacks", "defenses", "models", "datasets"):
        for name, entry in cat[part].items():
            assert isinstance(entry["description"], str) and entry["description"].strip(), name
    for name, entry in cat["defenses"].items():
        assert isinstance(entry["kind"], str) and entry["kind"], name
        assert isinstance(entry["access"], str) and entry["access"], name
        assert entry["kind"] == DEFENSES[name].kind and entry["access"] == DEFENSES[name].access
    for name, entry in cat["attacks"].items():
        fields = {f.name for f in dataclasses.fields(ATTACKS[name].config_cls)}
        assert set(entry["parameters"]) == fields
    assert "optimizer" in cat["training_recipe"]


def test_list_plain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in [*ATTACKS, *DEFENSES]:
        assert name in out


def test_unknown_attack(capsys: pytest.CaptureFixture[str]) -> None:
    line = _user_error(capsys, ["evaluate", "--attacker", "nope"])
    assert "'nope'" in line
    for name in ATTACKS:
        assert name in line


def test_unknown_defense(capsys: pytest.CaptureFixture[str]) -> None:
    line = _user_error(capsys, ["evaluate", "--attacker", "badnets", "--defender", "nope"])
    assert "'nope'" in line
    for name in DEFENSES:
        assert name in line


def test_unknown_attack_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    line = _user_error(capsys, ["evaluate", "--attacker", "badnets", "-A", "badkey=1"])
    assert "'badkey'" in line
    for f in dataclasses.fields(ATTACKS["badnets"].config_cls):
        assert f.name in line


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "--attacker", "badnets", "-A", "size=notanumber"],
        ["evaluate", "--attacker", "badnets", "-A", "size"],
        ["evaluate", "--attacker", "badnets", "-T", "epochs=1.5"],
        ["evaluate", "--attacker", "badnets", "-D", "overlays=8"],  # none has no parameters
        ["train", "--attacker", "badnets", "--out", "x.safetensors", "-T", "nosuch=1"],
    ],
    ids=["bad-float", "no-equals", "bad-int", "none-has-no-params", "bad-train-key"],
)
def test_bad_parameter_values(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    line = _user_error(capsys, argv)
    key = argv[-1].partition("=")[0]
    assert key in line


def test_defend_missing_model_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.safetensors"
    line = _user_error(capsys, ["defend", "--model", str(missing), "--defender", "none"])
    assert str(missing) in line and "arena train" in line


def test_defend_refuses_pickle(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, path)
    line = _user_error(capsys, ["defend", "--model", str(path), "--defender", "none"])
    assert "pickle" in line


def test_evaluate_end_to_end(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["evaluate", "--attacker", "badnets", "--defender", "none", "--limit", "120",
            "--json", "-T", "epochs=3", "--cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {*CELL_KEYS, "schema_version", "provenance"}
    check_stamp(result, seeds=[0])
    assert result["triggers"] == ["badnets"]  # one trigger: one entry, the cell's own
    assert result["asr_per_trigger"] == [result["asr"]]
    assert result["sasr_per_trigger"] == [result["sasr"]]
    assert result["detection"]["target_named"] is None  # no defense names a label
    for key in RATES:
        assert 0.0 <= result[key] <= 1.0, key
    assert 0.0 <= result["payoff"] <= 1.0
    assert result["frr"] == 0.0 and result["far"] == 1.0  # no defense: everything passes
    assert result["sda"] == pytest.approx(result["ca"])
    assert result["gates"]["cached"] == {"clean_model": False, "badnet": False}
    assert all(math.isfinite(v) and v >= 0 for v in result["seconds"].values())
    assert set(result["cpu_seconds"]) == set(result["seconds"])  # the same phases, in CPU time
    assert result["cpu_seconds"]["badnet"] > 0  # training a BadNet is work for the CPU
    # The same cell again comes from the cache and scores the same.
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["gates"]["cached"] == {"clean_model": True, "badnet": True}
    for key in (*RATES, "payoff"):
        assert again[key] == result[key], key
    # and as a table for a person
    assert main(argv[:-5] + argv[-4:]) == 0  # without --json
    table = capsys.readouterr().out
    assert "SASR" in table and f"payoff {result['payoff']:.3f}" in table


def test_train_then_defend(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    argv = ["train", "--attacker", "badnets", "--out", str(out), "--limit", "120",
            "-T", "epochs=3", "--cache", str(tmp_path / "cache")]
    assert main(argv) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out}") and "attack success" in line
    model, header = load_model(out)
    assert header["attack"]["name"] == "badnets"
    assert header["data"]["limit"] == 120 and header["train"]["epochs"] == 3
    assert model.arch == "small-cnn"

    # Fewer STRIP overlays than the default keep this fast; the flow is the same.
    argv = ["defend", "--model", str(out), "--defender", "strip", "--limit", "120", "--json",
            "-D", "overlays=8"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    check_stamp(report, seeds=[0])
    assert {"asr", "frr", "far", "sasr", "ca", "sda", "flagged", "details"} <= set(report)
    for key in ("asr", "frr", "far", "sasr", "ca", "sda"):
        assert 0.0 <= report[key] <= 1.0, key
    assert report["flagged"] is None  # STRIP filters inputs; it does not judge the model
    assert report["sasr"] <= report["far"]
