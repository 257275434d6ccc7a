"""Devices and resources: ``--device auto|cpu|cuda``, what a trial asks Ray for, and the CUDA
path of the training loop and inference (those tests run only where a GPU is visible)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from arena.cell.runner import (
    MEDIUM_FLOPS,
    SMALL_FLOPS,
    ClusterInfo,
    Compute,
    Resources,
    forward_flops,
    trial_resources,
)
from arena.cli.app import main
from arena.core.device import (
    DeviceError,
    current_device,
    module_device,
    resolve_device,
    set_device,
    use_device,
)
from arena.core.infer import logits, predict
from arena.core.train import TrainConfig, run_loop, train_classifier
from arena.data import Splits
from arena.models import build_model

HAS_CUDA = torch.cuda.is_available()
cuda_only = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible to torch here")
no_cuda_only = pytest.mark.skipif(HAS_CUDA, reason="a CUDA GPU is visible here")
FAST = TrainConfig(epochs=3, batch_size=32)


@pytest.fixture(autouse=True)
def _default_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARENA_DEVICE", raising=False)
    set_device(None)


def test_cpu_is_always_cpu_and_unknown_names_fail() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("cpu", cluster_gpus=0) == "cpu"
    with pytest.raises(DeviceError, match="choose auto, cpu or cuda"):
        resolve_device("tpu")


@no_cuda_only
def test_without_a_gpu_auto_is_the_cpu_and_cuda_is_an_error() -> None:
    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceError, match="--device cuda: .*use --device cpu"):
        resolve_device("cuda")


def test_on_a_cluster_its_gpus_decide() -> None:
    assert resolve_device("auto", cluster_gpus=0) == "cpu"
    assert resolve_device("auto", cluster_gpus=2) == "cuda"
    assert resolve_device("cuda", cluster_gpus=0.5) == "cuda"
    with pytest.raises(DeviceError, match="Ray cluster has no GPU"):
        resolve_device("cuda", cluster_gpus=0)


def test_the_process_device_default_env_and_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    assert current_device() == torch.device("cpu")
    monkeypatch.setenv("ARENA_DEVICE", "cpu")
    assert current_device() == torch.device("cpu")
    with use_device("cpu") as device:
        assert device == current_device() == torch.device("cpu")
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(torch.nn.ReLU()) == torch.device("cpu")


@no_cuda_only
def test_duel_with_cuda_and_no_gpu_is_one_line_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = [
        "duel", "--attacker", "badnets", "--defender", "none", "--device", "cuda",
        "--storage", f"sqlite:///{tmp_path / 'a.db'}", "--cache", str(tmp_path / "cache"),
        "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("arena duel: error: --device cuda:") and "--device cpu" in err
    assert list(tmp_path.iterdir()) == []  # no storage, cache or output was made


def test_trial_resources_follow_the_network_and_the_device() -> None:
    small, medium, large = SMALL_FLOPS / 2, (SMALL_FLOPS + MEDIUM_FLOPS) / 2, MEDIUM_FLOPS * 4
    assert trial_resources(small, "cpu", 16) == Resources(cpu=1.0)
    assert trial_resources(medium, "cpu", 16) == Resources(cpu=2.0)
    assert trial_resources(large, "cpu", 16) == Resources(cpu=4.0)
    assert trial_resources(large, "cpu", 2) == Resources(cpu=2.0)  # no node has 4
    assert trial_resources(small, "cuda", 16) == Resources(cpu=1.0, gpu=0.25)
    assert trial_resources(large, "cuda", 16) == Resources(cpu=1.0, gpu=0.5)
    assert trial_resources(large * 100, "cuda", 16) == Resources(cpu=1.0, gpu=1.0)
    assert trial_resources(small, "cpu", 16, cpus=3) == Resources(cpu=3.0)
    assert trial_resources(small, "cuda", 16, gpus=0.1) == Resources(cpu=1.0, gpu=0.1)


def test_flops_rank_the_architectures() -> None:
    assert forward_flops("small-cnn", (3, 16, 16), 10) < SMALL_FLOPS
    assert forward_flops("resnet18", (3, 32, 32), 10) > MEDIUM_FLOPS


def test_slots_count_trials_that_fit_at_once() -> None:
    info = ClusterInfo(nodes=("a", "b", "c"), cpus=(0.0, 1.0, 4.0), node_gpus=(0.0, 0.0, 1.0))
    assert info.slots(Resources(cpu=1.0)) == 5
    assert info.slots(Resources(cpu=2.0)) == 2
    assert info.slots(Resources(cpu=1.0, gpu=0.25)) == 4
    assert info.max_node_cpus == 4.0 and info.gpus == 1.0
    assert ClusterInfo((), (), ()).slots(Resources(cpu=1.0)) == 1


def test_compute_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="--max-failures"):
        Compute(max_failures=-1)
    with pytest.raises(ValueError, match="--gpus-per-trial"):
        Compute(gpus_per_trial=0)
    assert Compute(address="auto").where() == "the Ray cluster at auto"


def test_run_loop_on_an_explicit_cpu_is_the_default_loop(tiny: Splits) -> None:
    weights = []
    for device in (None, "cpu"):
        torch.manual_seed(0)
        net = build_model("small-cnn", tiny.image_shape, tiny.num_classes)
        run_loop(
            net,
            (tiny.train.x, tiny.train.y),
            lambda x, y, net=net: torch.nn.functional.cross_entropy(net(x), y),
            FAST,
            seed=0,
            device=device,
        )
        weights.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert torch.equal(weights[0], weights[1])


@cuda_only
def test_training_on_cuda_hands_back_a_cpu_model_that_learned(tiny: Splits) -> None:
    seen: list[torch.device] = []

    def hook(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append(x.device)
        return x, y

    net = build_model("small-cnn", tiny.image_shape, tiny.num_classes)
    with use_device("cuda"):
        result = train_classifier(
            net, tiny.train, dataclasses.replace(FAST, epochs=8), seed=0, batch_hook=hook
        )
    assert result.status == "ok" and result.history[-1] < result.history[0]
    assert module_device(net) == torch.device("cpu")
    assert set(seen) == {torch.device("cpu")}  # attacks poison on the CPU
    assert float((predict(net, tiny.test.x) == tiny.test.y).float().mean()) > 0.5


@cuda_only
def test_inference_on_cuda_matches_the_cpu_and_leaves_the_model_trainable(
    tiny: Splits,
) -> None:
    net = build_model("small-cnn", tiny.image_shape, tiny.num_classes)
    on_cpu = logits(net, tiny.test.x)
    with use_device("cuda"):
        on_gpu = logits(net, tiny.test.x, batch_size=7)
    assert on_gpu.device == torch.device("cpu") and module_device(net) == torch.device("cpu")
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-3, atol=1e-3)
    net.train()
    net(tiny.test.x[:4]).sum().backward()  # its weights are not inference tensors
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


@cuda_only
def test_a_cell_on_cuda_scores_like_on_the_cpu(tiny: Splits, tmp_path: Path) -> None:
    from arena.cell.play import evaluate
    from arena.cell.setting import Setting
    from arena.data import DataRef
    from strategies.players import AttackerStrategy, DefenderStrategy

    setting = Setting(data=DataRef(limit=150))
    players = AttackerStrategy.of("badnets", recipe=TrainConfig(epochs=5)), DefenderStrategy.of(
        "strip"
    )
    with use_device("cuda"):
        gpu = evaluate(*players, setting, cache=_cache(tmp_path / "g"))
    cpu = evaluate(*players, setting, cache=_cache(tmp_path / "c"))
    assert abs(gpu.ca - cpu.ca) < 0.1 and abs(gpu.asr - cpu.asr) < 0.2


def _cache(path: Path):  # type: ignore[no-untyped-def]
    from arena.core.cache import ArtifactCache

    return ArtifactCache(str(path))


@cuda_only
def test_a_duel_runs_its_trials_on_cuda(ray_local: object, tmp_path: Path) -> None:
    from arena.cell.setting import Setting
    from arena.data import DataRef
    from arena.duels.run import DuelSpec, run_duel
    from arena.game.budget import Budget

    setting = Setting(data=DataRef(limit=60), cache_url=str(tmp_path / "cache"))
    budget = Budget(rounds=1, attacker_trials=1, defender_trials=1, epsilon=0.0, ci_seeds=0)
    result = run_duel(
        DuelSpec("badnets", "strip", setting, budget),
        storage_url=f"sqlite:///{tmp_path / 'a.db'}",
        out_dir=tmp_path / "out",
        compute=Compute(device="auto"),
    )
    assert result["duel"]["device"] == "cuda"
    assert result["trials"] and result["trainings"] >= 2
