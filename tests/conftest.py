"""Shared fixtures: tiny data and one small trained model, built once per test session, and one
training thread for the tests that train in-process."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

import arena.core.train
import arena.plugins
from arena.core.train import TrainConfig, train_classifier
from arena.data import Splits, load_dataset
from arena.models import ArenaNet, build_model

# Arena's own suites run over the built-ins whatever plugins this environment has installed
# (the subprocesses and Ray workers the tests start inherit it); a test that means to load
# installed plugins says installed=True
os.environ[arena.plugins.NO_INSTALLED] = "1"


@pytest.fixture(autouse=True)
def _registries_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test loads (``--plugin``, ``ARENA_PLUGINS``) leaves the registries with it."""
    monkeypatch.setenv(arena.plugins.ENV, "")  # restored after the test, whoever changed it
    with arena.plugins.isolated():
        yield


@pytest.fixture(scope="session")
def tiny() -> Splits:
    """Digits, at most 150 images per split."""
    return load_dataset("digits", limit=150, seed=0)


@pytest.fixture(scope="session")
def tiny_model(tiny: Splits) -> ArenaNet:
    torch.manual_seed(0)  # the initial weights, whichever test asks for the model first
    model = build_model("small-cnn", tiny.image_shape, tiny.num_classes)
    train_classifier(model, tiny.train, TrainConfig(epochs=4), seed=0)
    return model


@pytest.fixture()
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def ray_local():  # type: ignore[no-untyped-def]
    """One local Ray instance shared by every test that needs it (starting Ray takes seconds)."""
    import logging

    from arena.cell.runner import quiet_ray_env

    quiet_ray_env()
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture()
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One training thread: two OpenMP threads sharing two busy cores are many times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(arena.core.train, "set_threads", lambda: 1)
    yield
    torch.set_num_threads(previous)
