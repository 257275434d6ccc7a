"""``arena cache``: sizes per kind of artifact, pruning by age and by what stored duels refer to,
and one-line errors for what it cannot do."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from arena.cell.play import cell_key, evaluate, play
from arena.cell.setting import Gates, Setting
from arena.cli.app import main
from arena.core.cache import ArtifactCache
from arena.core.train import TrainConfig
from arena.data import DataRef
from arena.duels.run import cell_keys
from strategies.players import AttackerStrategy, DefenderStrategy

pytestmark = pytest.mark.usefixtures("one_thread")

# the user's gate open, so that the defense runs on a BadNet of one epoch
SETTING = Setting(data=DataRef(limit=40), gates=Gates(delta_attack=1.0))
ATTACKER = AttackerStrategy.of("badnets", recipe=TrainConfig(epochs=1))
DEFENDER = DefenderStrategy.of("strip")
DAY = 86400.0


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding two cells of badnets against STRIP, on seeds 0 and 1 (each with its own
    clean model, BadNet, fit and cell)."""
    root = tmp_path_factory.mktemp("played") / "cache"
    cache = ArtifactCache(str(root))
    for seed in (0, 1):
        play(ATTACKER, DEFENDER, seed, SETTING, cache)
    return root


@pytest.fixture()
def cache_dir(played: Path, tmp_path: Path) -> Path:
    """This test's own copy of the played cache."""
    return Path(shutil.copytree(played, tmp_path / "cache"))


def files(root: Path) -> dict[str, list[Path]]:
    """The cache's files by kind."""
    out: dict[str, list[Path]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out.setdefault(p.relative_to(root).parts[0], []).append(p)
    return out


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    assert main([*argv, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def user_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``argv``: exit status 2 (from the command, or from argparse for an option's
    value) and one line on stderr, returned."""
    try:
        status = main(argv)
    except SystemExit as e:
        status = int(e.code or 0)
    assert status == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    return err.strip()


def stored_duel(folder: Path, seeds: list[int]) -> Path:
    """A ``duel.json`` whose payoff matrix is the cells of the two strategies on ``seeds``,
    listed as a duel lists them."""
    folder.mkdir(parents=True)
    record = {"cells": {"payoff_matrix": cell_keys([(ATTACKER, DEFENDER)], seeds, SETTING),
                        "interval": []}}  # fmt: skip
    (folder / "duel.json").write_text(json.dumps(record))
    return folder / "duel.json"


def test_info_reports_files_and_bytes_per_kind(
    cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = run_json(capsys, ["cache", "--cache", str(cache_dir)])
    on_disk = files(cache_dir)
    assert {"clean", "badnet", "fit", "cell"} <= set(record["kinds"])
    for kind, paths in on_disk.items():
        assert record["kinds"][kind] == {
            "files": len(paths),
            "bytes": sum(p.stat().st_size for p in paths),
        }
    assert record["total"]["files"] == sum(map(len, on_disk.values()))
    assert record["kinds"]["cell"]["files"] == 2 and record["kinds"]["fit"]["files"] == 2
    assert record["schema_version"] and "provenance" in record
    assert main(["cache", "info", "--cache", str(cache_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"cache {cache_dir}" and lines[1].split() == ["kind", "files", "size"]
    assert {line.split()[0] for line in lines[2:]} == {*on_disk, "total"}


def test_prune_by_age_removes_old_files_only(
    cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = [*files(cache_dir)["badnet"], *files(cache_dir)["cell"][:1]]
    ten_days_ago = time.time() - 10 * DAY
    for p in old:
        os.utime(p, (ten_days_ago, ten_days_ago))
    before = {p for ps in files(cache_dir).values() for p in ps}
    dry = run_json(capsys, ["cache", "prune", "--older-than", "7d", "--dry-run", "--cache",
                            str(cache_dir)])  # fmt: skip
    assert sorted(Path(f["path"]) for f in dry["files"]) == sorted(old)
    assert dry["removed"]["total"]["bytes"] == sum(p.stat().st_size for p in old)
    assert {p for ps in files(cache_dir).values() for p in ps} == before  # nothing gone
    assert main(["cache", "prune", "--older-than", "7d", "--cache", str(cache_dir)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"removed {len(old)} file(s)") and "badnet 2" in line
    assert {p for ps in files(cache_dir).values() for p in ps} == before - set(old)
    assert main(["cache", "prune", "--older-than", "11d", "--cache", str(cache_dir)]) == 0
    assert capsys.readouterr().out.startswith("removed 0 file(s)")


def test_prune_unreferenced_keeps_what_a_stored_duel_refers_to(
    cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = ArtifactCache(str(cache_dir))
    kept_cell = cache.load_json("cell", cell_key(ATTACKER, DEFENDER, 0, SETTING))
    other_cell = cache.load_json("cell", cell_key(ATTACKER, DEFENDER, 1, SETTING))
    assert kept_cell is not None and other_cell is not None
    used = kept_cell["artifacts"]
    assert {"clean", "badnet", "fit"} <= set(used)  # what the cell read or wrote
    stored_duel(tmp_path / "duels" / "d0", seeds=[0])
    argv = ["cache", "prune", "--unreferenced", "--duels-dir", str(tmp_path / "duels"),
            "--cache", str(cache_dir)]  # fmt: skip
    dry = run_json(capsys, [*argv, "--dry-run"])
    going = {(f["kind"], Path(f["path"]).name.split(".")[0]) for f in dry["files"]}
    assert ("cell", cell_key(ATTACKER, DEFENDER, 1, SETTING)) in going
    for kind, keys in other_cell["artifacts"].items():  # seed 1's models, fit, verdict...
        assert {(kind, k) for k in keys if k not in used.get(kind, [])} <= going
    assert main(argv) == 0
    capsys.readouterr()
    left = {(k, p.name.split(".")[0]) for k, ps in files(cache_dir).items() for p in ps}
    assert left == {("cell", cell_key(ATTACKER, DEFENDER, 0, SETTING))} | {
        (kind, key) for kind, keys in used.items() for key in keys
    }
    # the stored duel's cell replays, and so does its scoring: nothing is trained again
    assert play(ATTACKER, DEFENDER, 0, SETTING, cache).cached
    assert evaluate(ATTACKER, DEFENDER, SETTING, seed=0, cache=cache).trained == 0


def test_a_cell_from_before_artifact_lists_keeps_every_artifact(
    cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = ArtifactCache(str(cache_dir))
    key = cell_key(ATTACKER, DEFENDER, 0, SETTING)
    record = cache.load_json("cell", key)
    assert record is not None
    del record["artifacts"]  # as older code wrote it
    cache.save_json("cell", key, record)
    stored_duel(tmp_path / "duels" / "d0", seeds=[0])
    before = files(cache_dir)
    assert main(["cache", "prune", "--unreferenced", "--duels-dir", str(tmp_path / "duels"),
                 "--cache", str(cache_dir)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith("removed 1 file(s)") and "every artifact but the cells was kept" in out
    after = files(cache_dir)
    assert after["cell"] == [p for p in before["cell"] if key in p.name]
    assert {k: v for k, v in after.items() if k != "cell"} == {
        k: v for k, v in before.items() if k != "cell"
    }


def test_the_reference_duel_lists_its_cells_and_prune_keeps_them(
    reference_duel: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real duel.json: its matrix and interval cells, with what they used, survive."""
    result = reference_duel.result
    listed = result["cells"]
    assert listed["payoff_matrix"] and listed["interval"]
    copy = Path(shutil.copytree(reference_duel.cache, tmp_path / "cache"))
    duels = tmp_path / "duels" / result["duel"]["name"]
    duels.mkdir(parents=True)
    (duels / "duel.json").write_text(json.dumps(result, default=float))
    cache = ArtifactCache(str(copy))
    needed = {("cell", k) for part in listed.values() for k in part}
    for _, key in sorted(needed):
        record = cache.load_json("cell", key)
        assert record is not None and record["artifacts"]["badnet"]
        needed |= {(kind, k) for kind, keys in record["artifacts"].items() for k in keys}
    assert main(["cache", "prune", "--unreferenced", "--duels-dir", str(tmp_path / "duels"),
                 "--cache", str(copy)]) == 0  # fmt: skip
    assert "note:" not in capsys.readouterr().out
    left = {(k, p.name.split(".")[0]) for k, ps in files(copy).items() for p in ps}
    assert needed == left


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["prune", "--older-than", "7x"], "'7x' is not an age; write a number and a unit"),
        (["prune"], "say what to prune: --older-than AGE, --unreferenced"),
        (["info", "--older-than", "7d"], "--older-than is an option of `arena cache prune`"),
        (["prune", "--older-than", "1d", "--duels-dir", "x"], "--duels-dir says where"),
        (["prune", "--unreferenced", "--duels-dir", "/nonexistent/duels"], "is not a folder"),
    ],
)
def test_bad_input_is_one_line(
    extra: list[str], says: str, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert says in user_error(capsys, ["cache", *extra, "--cache", str(cache_dir)])


def test_a_missing_cache_or_duel_record_is_one_line(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = user_error(capsys, ["cache", "--cache", str(tmp_path / "nowhere")])
    assert "there is no cache at" in line and "give --cache" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["cache", "prune", "--unreferenced", "--cache", str(cache_dir), "--duels-dir"]
    assert "no duel.json under" in user_error(capsys, [*argv, str(empty)])
    old = tmp_path / "old" / "d"
    old.mkdir(parents=True)
    (old / "duel.json").write_text(json.dumps({"value": 0.5}))
    line = user_error(capsys, [*argv, str(tmp_path / "old")])
    assert "written before duels listed their cells" in line
    assert len(files(cache_dir)["cell"]) == 2  # refused before anything went
