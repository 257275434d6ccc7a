"""The example plugin keeps Arena's contract (``arena.testing``), is found through its entry
points once installed, and plays a duel.

Run from the repository after ``pip install --no-build-isolation -e examples/arena-blur``; the
tests skip, saying so, where the plugin is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("arena_blur", reason="pip install --no-build-isolation -e examples/arena-blur")

from arena_blur.blur import Blur, BlurDeployment, kernel_side  # noqa: E402
from arena_blur.frame import Frame  # noqa: E402

import arena.plugins as plugins  # noqa: E402
from arena.testing import attack_suite, defense_suite  # noqa: E402


@pytest.mark.parametrize("check", attack_suite(Frame))
def test_frame_keeps_the_attack_contract(check) -> None:  # type: ignore[no-untyped-def]
    check()


@pytest.mark.parametrize("check", defense_suite(Blur))
def test_blur_keeps_the_defense_contract(check) -> None:  # type: ignore[no-untyped-def]
    check()


def test_blur_smooths_and_keeps_the_mean() -> None:
    import torch

    x = torch.zeros(1, 3, 16, 16)
    x[:, :, 8, 8] = 1.0
    out = BlurDeployment(torch.nn.Identity(), sigma=1.0).purify(x)
    assert kernel_side(1.0) == 7 and kernel_side(0.3) == 3
    assert float(out[0, 0, 8, 8]) < 0.25 and float(out[0, 0, 8, 9]) > 0.05
    assert abs(float(out.sum()) - float(x.sum())) < 1e-4  # far from the border: mass kept


def test_the_entry_points_register_both_with_the_distribution_as_origin() -> None:
    with plugins.isolated():
        met = plugins.load_plugins(installed=True)
        mine = [p for p in met if p.source.startswith("arena-blur ")]
        assert len(mine) == 1 and mine[0].error is None, [p.error for p in met]
        assert sorted(mine[0].registered) == ["attack:frame", "defense:blur"]
        assert plugins.origin("defense", "blur") == mine[0].source
        assert plugins.tables()["defense"]["blur"] is Blur


# the size of Arena's reference duel in its tests: one round, 2 + 1 trials, 2 fresh seeds
DUEL = [
    "duel", "--attacker", "badnets", "--defender", "blur", "--limit", "60", "--seed", "0",
    "--budget", "quick", "--rounds", "1", "--attacker-trials", "2", "--defender-trials", "1",
    "--epsilon", "0", "--seeds", "1", "--ci-seeds", "2", "--json",
]  # fmt: skip


def test_a_duel_against_the_installed_blur(tmp_path: Path) -> None:
    """``arena duel --defender blur`` with nothing but the installed plugin: a process of its
    own, as a user runs it (the installed plugins load by themselves)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", plugins.NO_INSTALLED)}
    env.update(RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1")
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="arena-ray-", dir="/tmp")  # short socket paths
    where = [
        "--cache", str(tmp_path / "cache"), "--storage", f"sqlite:///{tmp_path / 'arena.db'}",
        "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "arena", *DUEL, *where],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{") :])
    assert result["payoff_matrix"]["defenders"][0].startswith("blur#")
    assert 0.0 <= result["value"] <= 1.0
    origin = result["provenance"]["plugins"]["defense:blur"]["origin"]
    assert origin.startswith("arena-blur ")
