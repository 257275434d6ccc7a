"""A network of one's own, trained outside Arena: its class registered by a ``--plugin`` file,
its weights a plain safetensors file, its shape a JSON config; `arena defend` runs black-box and
white-box defenses on it (docs/extending.md, "Bring your own trained model")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch

import arena.plugins as plugins
from arena.cli.app import main
from arena.data import load_dataset

NET = '''
"""A network of one's own: an ArenaNet subclass, so white-box defenses see its stages."""
from torch import nn

from arena.models import ArenaNet, ModelSpec
from arena.plugins import register_model


class TwoConv(ArenaNet):
    def __init__(self, image_shape, num_classes):
        c, h, w = image_shape
        block1 = nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        block2 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        head = nn.Sequential(nn.Flatten(), nn.Linear(16 * (h // 2) * (w // 2), num_classes))
        stages = [("block1", block1), ("block2", block2), ("head", head)]
        super().__init__("two-conv", image_shape, num_classes, stages, ("block1", "block2"))


register_model(ModelSpec("two-conv", TwoConv, "two convolutions and global pooling"))


class NotArena(nn.Module):
    def __init__(self, image_shape, num_classes):
        super().__init__()
        self.head = nn.Linear(3, num_classes)


register_model(ModelSpec("not-arena", NotArena, "a plain module"))
'''


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The weights of a two-conv trained by a plain PyTorch loop, in a plain safetensors file."""
    folder = tmp_path_factory.mktemp("own-model")
    net = folder / "my_net.py"
    net.write_text(NET)
    with plugins.isolated():
        [plugin] = plugins.load_plugins([str(net)], installed=False)
        assert plugin.error is None, plugin.error
        build = plugins.tables()["model"]["two-conv"].build
    data = load_dataset("digits", limit=60)
    torch.manual_seed(0)
    model = build(data.image_shape, data.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):  # a plain training loop, nothing of Arena's
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(data.train.x), data.train.y).backward()
        opt.step()
    path = folder / "my_net.safetensors"
    safetensors.torch.save_file(model.state_dict(), str(path))
    return path


@pytest.fixture()
def trained(weights: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """The plugin file, the weights and the network's config, the config free to change."""
    net = tmp_path / "my_net.py"
    net.write_text(NET)
    data = load_dataset("digits", limit=60)
    config = tmp_path / "my_net.json"
    config.write_text(
        json.dumps(
            {
                "arch": "two-conv",
                "image_shape": list(data.image_shape),
                "num_classes": data.num_classes,
                "data": {"name": "digits"},
            }
        )
    )
    return net, weights, config


@pytest.mark.parametrize("defender", ["strip", "fine-pruning"])
def test_arena_defend_runs_on_a_plain_safetensors_file_of_a_plugin_network(
    trained: tuple[Path, Path, Path], defender: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    net, weights, config = trained
    argv = ["defend", "--plugin", str(net), "--model", str(weights), "--model-config", str(config)]
    argv += ["--defender", defender, "--limit", "60", "--cache", str(tmp_path / "c"), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ca"] > 0.5, out  # the weights were loaded: an untrained net is near 0.1
    assert out["sda"] is not None and out["asr"] is None  # no attack recorded in a config


def test_without_its_plugin_the_architecture_is_refused_in_one_line(
    trained: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, weights, config = trained
    argv = ["defend", "--model", str(weights), "--model-config", str(config)]
    assert main([*argv, "--defender", "strip", "--limit", "60"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "model.arch='two-conv' is not a known architecture" in err
    assert "load the plugin that defines it with --plugin" in err


def test_a_plugin_network_that_is_not_an_arena_network_is_refused(
    trained: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    net, weights, config = trained
    config.write_text(config.read_text().replace("two-conv", "not-arena"))
    argv = ["defend", "--plugin", str(net), "--model", str(weights), "--model-config", str(config)]
    assert main([*argv, "--defender", "strip", "--limit", "60"]) == 2
    err = capsys.readouterr().err
    assert "model 'not-arena' built a NotArena, not an arena.models.ArenaNet" in err


def test_a_bad_model_config_is_one_line(
    trained: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    net, weights, config = trained
    config.write_text(json.dumps({"arch": "two-conv", "image_shape": [3, 16, 16]}))
    argv = ["defend", "--plugin", str(net), "--model", str(weights), "--model-config", str(config)]
    assert main([*argv, "--defender", "strip"]) == 2
    assert "is not a model config: give a JSON object with arch" in capsys.readouterr().err
