"""Plugins (arena/plugins.py): a ``.py`` file, a module and an installed distribution's entry
points register attacks, defenses, models and datasets; a faulty plugin is one line and takes
nothing else down; Ray's workers load what the driver loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import arena.plugins as plugins
from arena.cli.app import main
from arena.data import DATASETS
from arena.models import MODELS
from strategies import ATTACKS, DEFENSES
from strategies.players import parse_defenders

BLUR = '''
"""A test plugin: a box-blur purifier, a model and a dataset."""
from dataclasses import dataclass

import torch
from torch import nn

from arena.core.config import param
from arena.data import DatasetSpec, load_dataset
from arena.models import ArenaNet, ModelSpec
from arena.plugins import register_dataset, register_defense, register_model
from strategies.defenses.base import Defense, DefenseConfig, Deployment


@dataclass(frozen=True)
class BoxBlurConfig(DefenseConfig):
    width: int = param(3, low=3, high=5, step=2, help="side of the box")


@dataclass
class BoxBlurDeployment(Deployment):
    width: int = 3

    def purify(self, x):
        return nn.functional.avg_pool2d(x, self.width, stride=1, padding=self.width // 2)


@register_defense
class BoxBlur(Defense[BoxBlurConfig]):
    name = "box-blur"
    version = 1
    summary = "blur every input with a box filter"
    kind = "purifier"
    access = "black-box"
    caches_fit = False
    config_cls = BoxBlurConfig

    def fit_copy(self, model, clean):
        return BoxBlurDeployment(model, width=self.config.width)


def tiny_net(image_shape, num_classes):
    """one convolution and a linear layer"""
    c, h, w = image_shape
    stages = [
        ("features", nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.ReLU())),
        ("head", nn.Sequential(nn.Flatten(), nn.Linear(4 * h * w, num_classes))),
    ]
    return ArenaNet("tiny-net", tuple(image_shape), num_classes, stages, ("features",))


register_model(ModelSpec("tiny-net", tiny_net, "one convolution and a linear layer"))


def few_digits(path, seed, image_size, limit):
    return load_dataset("digits", seed=seed, image_size=image_size, limit=limit or 40)


register_dataset(DatasetSpec("few-digits", few_digits, "at most 40 digits a split", False))
'''


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_a_file_plugin_registers_everything_and_is_taken_back_whole(tmp_path: Path) -> None:
    path = write(tmp_path, "blur_plugin.py", BLUR)
    with plugins.isolated():
        met = plugins.load_plugins([str(path)], installed=False)
        assert [p.error for p in met] == [None]
        assert sorted(met[0].registered) == [
            "dataset:few-digits",
            "defense:box-blur",
            "model:tiny-net",
        ]
        assert "box-blur" in DEFENSES and "tiny-net" in MODELS and "few-digits" in DATASETS
        assert plugins.origin("defense", "box-blur") == "file blur_plugin.py"
        assert plugins.origin("defense", "strip") == "built-in"
        assert plugins.load_plugins([str(path)], installed=False) == []  # once only
        env = plugins.runtime_env()
        assert env is not None and env["env_vars"][plugins.ENV] == str(path)
        assert env["env_vars"]["PYTHONPATH"].split(os.pathsep)[-1] == str(tmp_path)
        assert plugins.job_runtime_env()["py_modules"] == [str(path)]
    assert "box-blur" not in DEFENSES and "tiny-net" not in MODELS
    assert "blur_plugin" not in sys.modules
    assert plugins.runtime_env() is None


def test_arena_list_shows_a_plugins_origin(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path, "blur_plugin.py", BLUR)
    assert main(["list", "--json", "--plugin", str(path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["defenses"]["box-blur"]["origin"] == "file blur_plugin.py"
    assert listed["defenses"]["strip"]["origin"] == "built-in"
    assert listed["models"]["tiny-net"]["origin"] == "file blur_plugin.py"
    assert listed["provenance"]["plugins"]["defense:box-blur"]["origin"] == "file blur_plugin.py"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("raise RuntimeError('no GPU driver')", "RuntimeError: no GPU driver"),
        ("import not_a_module_anywhere", "ModuleNotFoundError: No module named"),
        (
            BLUR.replace('name = "box-blur"', 'name = "strip"'),
            "defense 'strip' is registered twice; a built-in or another plugin has that name",
        ),
        (
            BLUR.replace("low=3, high=5", "low=5, high=3"),
            "defense 'box-blur': the search range of width is empty (low 5 > high 3)",
        ),
    ],
)
def test_a_faulty_plugin_is_one_line_and_registers_nothing(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, "faulty.py", text)
    before = {kind: dict(table) for kind, table in plugins.tables().items()}
    with plugins.isolated():
        [plugin] = plugins.load_plugins([str(path)], installed=False)
        assert plugin.error is not None and "\n" not in plugin.error
        assert plugin.error.startswith(f"plugin {path}: ")
        assert problem in plugin.error
        # what it registered before its fault is taken back; the built-ins are all there
        assert {kind: dict(table) for kind, table in plugins.tables().items()} == before
        with pytest.raises(plugins.PluginError, match="^plugin "):
            plugins.load_plugins([str(tmp_path / "missing.py")], installed=False, strict=True)


def test_arena_list_with_a_plugin_that_raises_still_lists_the_builtins(tmp_path: Path) -> None:
    bad = write(tmp_path, "broken_plugin.py", "raise ImportError('needs libfoo')\n")
    env = {k: v for k, v in os.environ.items() if k != plugins.ENV}
    env[plugins.ENV] = str(bad)
    done = subprocess.run(
        [sys.executable, "-m", "arena", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        f"WARNING arena.plugins: plugin {bad}: ImportError: needs libfoo; it is skipped"
    ]
    listed = json.loads(done.stdout)
    assert set(ATTACKS) <= set(listed["attacks"]) and set(DEFENSES) == set(listed["defenses"])


def test_installed_entry_points_register_with_their_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "arena_boxblur-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: arena-boxblur\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text(
        "[arena.defenses]\nbox-blur = boxblur_dist:BoxBlur\n"
        "[arena.models]\ntiny-net = boxblur_dist:tiny_net\n"
        "[arena.datasets]\nfew-digits = boxblur_dist:few_digits\n"
    )
    # the module registers the model itself too; the entry point of the same spec is no double
    write(tmp_path, "boxblur_dist.py", BLUR.replace("@register_defense\n", ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    with plugins.isolated():
        assert plugins.load_plugins(installed=False) == []
        assert "box-blur" not in DEFENSES
        met = plugins.load_plugins(installed=True)
        mine = [p for p in met if p.source == "arena-boxblur 0.3"]
        assert len(mine) == 1 and mine[0].error is None, [p.error for p in met]
        assert plugins.origin("defense", "box-blur") == "arena-boxblur 0.3"
        assert plugins.origin("dataset", "few-digits") == "arena-boxblur 0.3"
        assert DEFENSES["box-blur"].__module__ == "boxblur_dist"
        assert len(DATASETS["few-digits"].loader(None, 0, None, None).train) == 40
        assert "arena-boxblur 0.3" in plugins.installed_distributions()
        # an installed plugin is one the user means to play: it joins `all`
        assert {"box-blur", "strip+box-blur"} <= set(parse_defenders("all"))
    assert "box-blur" not in DEFENSES and "box-blur" not in parse_defenders("all")


def test_an_entry_point_under_another_name_than_its_class_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "misnamed-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: misnamed\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[arena.defenses]\nblur = misnamed_mod:BoxBlur\n")
    write(tmp_path, "misnamed_mod.py", BLUR.replace("@register_defense\n", ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    with plugins.isolated():
        met = [p for p in plugins.load_plugins(installed=True) if p.source == "misnamed 1.0"]
        assert met[0].error == (
            "plugin misnamed 1.0: entry point blur = misnamed_mod:BoxBlur names a class whose "
            "name is 'box-blur'; give the entry point the class's name"
        )
        assert "box-blur" not in DEFENSES and "tiny-net" not in MODELS


def test_a_model_file_naming_a_plugin_architecture_imports_nothing(tmp_path: Path) -> None:
    from arena.core.model_files import ModelFileError, check_spec

    trap = write(tmp_path, "trap_arch.py", "raise SystemExit('imported')\n")
    spec = {"arch": "trap_arch", "num_classes": 10, "image_shape": [3, 16, 16]}
    sys.path.insert(0, str(trap.parent))
    try:
        with pytest.raises(ModelFileError, match="load the plugin that defines it with --plugin"):
            check_spec(spec, "m.safetensors")
    finally:
        sys.path.remove(str(trap.parent))
    assert "trap_arch" not in sys.modules


def test_a_duel_plays_a_plugin_file_strategy_in_rays_workers(
    tmp_path: Path, reference_duel: Any, capsys: pytest.CaptureFixture
) -> None:
    """``arena duel --plugin FILE`` at the reference duel's size, with the plugin's defense: the
    trials and the cells run in Ray's workers, which get the file through the tasks' runtime
    environment (a worker without it could not even read the defense's config)."""
    path = write(tmp_path, "blur_plugin.py", BLUR)
    shutil.copytree(reference_duel.cache, tmp_path / "cache")  # its BadNets: only blur is new
    argv = [*reference_duel.argv(tmp_path), "--plugin", str(path)]
    argv[argv.index("strip")] = "box-blur"
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["payoff_matrix"]["defenders"][0].startswith("box-blur#")
    assert {t["side"] for t in result["trials"]} == {"attacker", "defender"}
    defended = [t for t in result["trials"] if t["side"] == "defender"]
    assert all(t["strategy"].startswith("box-blur#") for t in defended)
    assert result["provenance"]["plugins"]["defense:box-blur"]["origin"] == "file blur_plugin.py"
    assert 0.0 <= result["value"] <= 1.0


def test_a_worker_without_the_drivers_file_imports_the_plugin_by_its_module_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a node that does not share the driver's files, Ray's ``py_modules`` puts the file on
    the path: the path ``ARENA_PLUGINS`` names is missing, its module is found by its stem."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    write(shipped, "blur_plugin.py", BLUR)
    monkeypatch.syspath_prepend(str(shipped))
    monkeypatch.setenv(plugins.ENV, str(tmp_path / "driver" / "blur_plugin.py"))
    with plugins.isolated():
        [plugin] = plugins.load_plugins(installed=False)
        assert plugin.error is None and plugin.module == "blur_plugin"
        assert "box-blur" in DEFENSES
        [missing] = plugins.load_plugins([str(tmp_path / "nowhere" / "nothing_here.py")])
        assert missing.error == (
            f"plugin {tmp_path / 'nowhere' / 'nothing_here.py'}: no such file "
            f"{tmp_path / 'nowhere' / 'nothing_here.py'}; give --plugin a .py file or a module"
        )


def test_a_plugin_file_named_as_another_module_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "json.py", BLUR)
    with plugins.isolated():
        [plugin] = plugins.load_plugins([str(path)], installed=False)
        assert plugin.error is not None and "module name 'json' is taken by" in plugin.error
        assert "box-blur" not in DEFENSES


def test_a_module_of_the_working_folder_is_found_as_a_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``arena --plugin my_pkg.defenses`` in the folder that holds ``my_pkg`` (the ``arena``
    command's path starts at its own script, not the working folder)."""
    package = tmp_path / "my_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write(package, "defenses.py", BLUR)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    with plugins.isolated():
        [plugin] = plugins.load_plugins(["my_pkg.defenses"], installed=False)
        assert plugin.error is None and plugins.origin("defense", "box-blur") == (
            "module my_pkg.defenses"
        )
        env = plugins.runtime_env()
        assert env is not None and str(tmp_path) in env["env_vars"]["PYTHONPATH"].split(os.pathsep)
    sys.modules.pop("my_pkg", None)
