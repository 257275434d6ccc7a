"""Fixtures of the command-line tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

import arena.core.train


@pytest.fixture()
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One training thread: two OpenMP threads sharing two busy cores are many times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(arena.core.train, "set_threads", lambda: 1)
    yield
    torch.set_num_threads(previous)
