"""The one training loop: BadNets, clean references, fine-tuning defenses and generators.

The loop holds whole datasets as tensors and draws each batch with one index operation, so no
per-sample Python runs in the hot path (a ``DataLoader`` over a per-sample ``Dataset`` spends
most of a small network's step time collating; see ``bench/train.py``). The recipe is a
:class:`TrainConfig` whose fields are the attacker's shared training-recipe search space
(pitfall 1 of Veldanda & Garg: a defense tuned for one recipe can break under another).

A run that diverges (a non-finite loss, as the lr=1 Adadelta recipes of Veldanda & Garg's
Table 4 can produce on some networks) stops with ``status="diverged"`` instead of raising.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from arena.data.splits import Split
from arena.models.base import ArenaNet
from arena.params import param

log = logging.getLogger(__name__)

Callback = Callable[[int, dict[str, float]], None]
"""Called after each epoch with the epoch number (from 1) and ``{"loss": ..., ...}``."""

BatchHook = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""Changes a training batch ``(x, y)`` on the fly (an attack that poisons per batch)."""


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe. Every field is part of the attacker's search space."""

    optimizer: str = param("adam", choices=("sgd", "adam", "adadelta"))
    lr: float = param(3e-3, low=1e-4, high=1.0, log=True, help="initial learning rate")
    batch_size: int = param(64, choices=(32, 64, 128, 256))
    epochs: int = param(20, low=5, high=60, help="passes over the training set")
    weight_init: str = param("default", choices=("default", "kaiming", "xavier", "normal"))
    preprocessing: str = param(
        "unit",
        choices=("unit", "center", "standardize"),
        help="unit: x in [0,1]; center: 2x-1; standardize: per-channel (x-mean)/std",
    )
    weight_decay: float = param(0.0, choices=(0.0, 1e-5, 1e-4, 5e-4))
    augmentation: str = param(
        "none", choices=("none", "shift", "shift+flip"), help="random translation, h-flip"
    )
    schedule: str = param("constant", choices=("constant", "step", "cosine"))


@dataclass
class TrainResult:
    status: Literal["ok", "diverged"]
    epochs: int
    steps: int
    final_loss: float
    seconds: float
    images: int
    history: list[float] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def set_threads() -> int:
    """Use every core this process may run on (torch's default can be fewer), unless
    ``OMP_NUM_THREADS`` says otherwise (e.g. several trials sharing a machine)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def make_optimizer(params: Sequence[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    wd = config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=wd)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=wd)
    if config.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=config.lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose sgd, adam or adadelta")


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Learning-rate multiplier at ``epoch`` (0-based). ``step`` follows the shape of Veldanda &
    Garg's TCA recipe (x0.5 after 40% of the epochs, x0.1 after 70%)."""
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return 1.0 if epoch < 0.4 * epochs else 0.5 if epoch < 0.7 * epochs else 0.1
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, epochs)))
    raise ValueError(f"unknown schedule {schedule!r}; choose constant, step or cosine")


def run_loop(
    module: nn.Module,
    tensors: Sequence[torch.Tensor],
    loss_fn: Callable[..., torch.Tensor],
    config: TrainConfig,
    *,
    seed: int,
    parameters: Sequence[nn.Parameter] | None = None,
    callback: Callback | None = None,
) -> TrainResult:
    """Minimise ``loss_fn(*batch)`` over shuffled mini-batches of ``tensors``.

    ``tensors`` share their first dimension; each step indexes all of them with one random
    batch of indices. ``parameters`` defaults to every parameter of ``module``.
    """
    set_threads()
    n = int(tensors[0].shape[0])
    if n == 0:
        raise ValueError("cannot train on an empty dataset")
    generator = torch.Generator().manual_seed(seed)
    params = list(parameters) if parameters is not None else list(module.parameters())
    optimizer = make_optimizer(params, config)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    bs = min(config.batch_size, n)
    history: list[float] = []
    steps = images = 0
    status: Literal["ok", "diverged"] = "ok"
    start = time.perf_counter()
    module.train()
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        factor = lr_factor(config.schedule, epoch - 1, config.epochs)
        for group, lr in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = lr * factor
        order = torch.randperm(n, generator=generator)
        total = torch.zeros(())
        for i in range(0, n - bs + 1, bs):  # the last partial batch is dropped
            index = order[i : i + bs]
            loss = loss_fn(*(t[index] for t in tensors))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            steps += 1
            images += len(index)
        epoch_loss = float(total) / max(1, n // bs)
        history.append(epoch_loss)
        if not math.isfinite(epoch_loss):
            status = "diverged"
            log.warning("training diverged at epoch %d (loss %s); stopping", epoch, epoch_loss)
            break
        if callback is not None:
            callback(epoch, {"loss": epoch_loss})
    module.eval()
    return TrainResult(
        status=status,
        epochs=epoch,
        steps=steps,
        final_loss=history[-1] if history else float("nan"),
        seconds=time.perf_counter() - start,
        images=images,
        history=history,
    )


def init_weights(model: nn.Module, scheme: str, seed: int) -> None:
    """Re-initialise conv and linear weights by ``scheme`` (``default`` keeps torch's)."""
    if scheme == "default":
        return
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            with torch.no_grad():
                if scheme == "kaiming":
                    std = math.sqrt(2.0 / nn.init._calculate_correct_fan(m.weight, "fan_in"))
                elif scheme == "xavier":
                    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
                    std = math.sqrt(2.0 / (fan_in + fan_out))
                elif scheme == "normal":
                    std = 0.01
                else:
                    raise ValueError(
                        f"unknown weight_init {scheme!r}; choose default, kaiming, xavier or normal"
                    )
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * std)
                if m.bias is not None:
                    m.bias.zero_()


def set_preprocessing(model: ArenaNet, x: torch.Tensor, scheme: str) -> None:
    """Fix the network's input normalisation from the recipe and the training images."""
    c = x.shape[1]
    if scheme == "unit":
        model.normalize.set([0.0] * c, [1.0] * c)
    elif scheme == "center":
        model.normalize.set([0.5] * c, [0.5] * c)
    elif scheme == "standardize":
        mean = x.mean(dim=(0, 2, 3))
        std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        model.normalize.set(mean.tolist(), std.tolist())
    else:
        raise ValueError(f"unknown preprocessing {scheme!r}; choose unit, center or standardize")


def augment(x: torch.Tensor, scheme: str) -> torch.Tensor:
    """Random per-image translation (up to 1/8 of the side) and horizontal flip, with kornia."""
    if scheme == "none":
        return x
    out: torch.Tensor = _augmenter(scheme)(x)
    return out.reshape(x.shape)


@functools.cache
def _augmenter(scheme: str) -> nn.Module:
    import kornia.augmentation as K

    ops: list[nn.Module] = [K.RandomAffine(degrees=0.0, translate=(0.125, 0.125), p=1.0)]
    if scheme == "shift+flip":
        ops.append(K.RandomHorizontalFlip())
    elif scheme != "shift":
        raise ValueError(f"unknown augmentation {scheme!r}; choose none, shift or shift+flip")
    return nn.Sequential(*ops)


def train_classifier(
    model: ArenaNet,
    data: Split,
    config: TrainConfig,
    *,
    seed: int,
    batch_hook: BatchHook | None = None,
    callback: Callback | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data`` by ``config``: cross-entropy on (augmented) batches.

    ``batch_hook`` lets an attack change each batch (poison on the fly) without owning a loop.
    """
    torch.manual_seed(seed)
    init_weights(model, config.weight_init, seed)
    set_preprocessing(model, data.x, config.preprocessing)

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if batch_hook is not None:
            x, y = batch_hook(x, y)
        return F.cross_entropy(model(augment(x, config.augmentation)), y)

    return run_loop(model, (data.x, data.y), loss_fn, config, seed=seed, callback=callback)
