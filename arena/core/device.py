"""Where tensors live: the CPU (the default) or a CUDA GPU, chosen once per process.

``arena duel --device auto|cpu|cuda`` resolves the choice in the driver (``auto``: CUDA when a
GPU is visible, here or on the Ray cluster, else the CPU), and every Ray task and trial sets
it for its own process with :func:`set_device`. The training loop (``arena.core.train``, for
callers that pass ``device=current_device()``, as :func:`arena.core.train.train_classifier` does)
and batched inference (``arena.core.infer``) run on it; everything else, and every model a caller
gets back, stays on the CPU, so strategies never need to know. ``ARENA_DEVICE`` sets the
default of a process that is not told otherwise (``arena evaluate`` on a GPU machine).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

DEVICES = ("auto", "cpu", "cuda")
DEVICE_ENV = "ARENA_DEVICE"

_current: torch.device | None = None


class DeviceError(ValueError):
    """A device that cannot be used here."""


def cuda_problem() -> str | None:
    """Why CUDA cannot be used in this process, or ``None`` when it can."""
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build"
    if not torch.cuda.is_available():
        return "torch sees no CUDA GPU here (torch.cuda.is_available() is False)"
    return None


def resolve_device(name: str, *, cluster_gpus: float | None = None) -> str:
    """``"cpu"`` or ``"cuda"`` for a requested ``auto``, ``cpu`` or ``cuda``.

    ``cluster_gpus`` is the number of GPUs a Ray cluster offers when the work runs there (its
    workers have the GPUs, not this process); ``None`` asks this process's torch. ``cuda``
    where there is none raises :class:`DeviceError` with the reason and the fix."""
    if name not in DEVICES:
        raise DeviceError(f"unknown device {name!r}; choose auto, cpu or cuda")
    if name == "cpu":
        return "cpu"
    if cluster_gpus is None:
        problem = cuda_problem()
    else:
        problem = None if cluster_gpus > 0 else "the Ray cluster has no GPU resources"
    if problem is None:
        return "cuda"
    if name == "auto":
        return "cpu"
    raise DeviceError(f"--device cuda: {problem}; use --device cpu, or auto to pick one")


def set_device(name: str | torch.device | None) -> torch.device:
    """Use ``name`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``) for this process from now on;
    ``None`` goes back to the default (``ARENA_DEVICE``, else the CPU)."""
    global _current
    _current = None if name is None else torch.device(name)
    return current_device()


def current_device() -> torch.device:
    """The device this process trains and infers on."""
    if _current is not None:
        return _current
    env = os.environ.get(DEVICE_ENV, "").strip()
    return torch.device(resolve_device(env) if env else "cpu")


@contextmanager
def use_device(name: str | torch.device | None) -> Iterator[torch.device]:
    """``set_device`` for the duration of a ``with`` block."""
    global _current
    saved = _current
    try:
        yield set_device(name)
    finally:
        _current = saved


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's parameters (or buffers) are; the CPU for one with neither."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")
