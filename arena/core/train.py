"""The one training loop: BadNets, clean references, fine-tuning defenses and generators.

The loop holds whole datasets as tensors and draws each batch with one index operation, so no
per-sample Python runs in the hot path (a ``DataLoader`` over a per-sample ``Dataset`` spends
a share of a small network's step time collating; see ``bench/train.py``). The recipe is a
:class:`TrainConfig` whose fields are the attacker's shared training-recipe search space
(pitfall 1 of Veldanda & Garg: a defense tuned for one recipe can break under another).

A run that diverges (a non-finite loss, as the lr=1 Adadelta recipes of Veldanda & Garg's
Table 4 can produce on some networks) stops with ``status="diverged"`` instead of raising.

Speed (measured in ``bench/README.md``): Adam and SGD use torch's fused CPU kernels (one kernel
updates every parameter); :func:`train_classifier` trains convolutional networks in the
``channels_last`` memory format (oneDNN's convolutions and torch's max-pool are several times
faster in it) and hands the model back in the ordinary layout. ``ARENA_COMPILE=1`` (or
:func:`set_compile`) also compiles the forward and backward pass with ``torch.compile``: a few
seconds per network and batch shape (tens of seconds with a cold on-disk cache), reused by every
later model of that shape in the process. It is off by default because on the CPUs measured it
was no faster than this eager loop for the default network and slower for some others; where
compilation is unavailable it logs one line and trains eagerly.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from arena.core.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Validated, param
from arena.core.device import current_device, module_device
from arena.data.splits import Split
from arena.models.base import ArenaNet

VERSION = 1
"""Raised by one whenever a change to the loop or its recipe alters the networks it trains: it
enters the cache key of every model and trained part, so none trained by the old loop is
replayed (:func:`arena.cell.setting.code_versions`)."""

log = logging.getLogger(__name__)

Callback = Callable[[int, dict[str, float]], None]
"""Called after each epoch with the epoch number (from 1) and ``{"loss": ..., ...}``."""

BatchHook = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""Changes a training batch ``(x, y)`` on the fly (an attack that poisons per batch)."""


@dataclass(frozen=True)
class TrainConfig(Validated):
    """A training recipe. Every field is part of the attacker's search space.

    Its string fields must hold one of their choices. ``batch_size`` and ``weight_decay`` are
    searched over a few choices but take any valid value (the defenses' and generators' own
    recipes use other batch sizes), with a warning. ``epochs=0`` is valid (a fine-tuning
    defense with no epochs leaves the model as it is), with a warning, since the search starts
    at 5."""

    strict_choices = True

    optimizer: str = param("adam", choices=("sgd", "adam", "adadelta"))
    lr: float = param(
        3e-3, low=1e-4, high=1.0, log=True, valid=POSITIVE, help="initial learning rate"
    )
    batch_size: int = param(64, choices=(32, 64, 128, 256), valid=AT_LEAST_ONE)
    epochs: int = param(20, low=5, high=60, valid=NON_NEGATIVE, help="passes over the training set")
    weight_init: str = param("default", choices=("default", "kaiming", "xavier", "normal"))
    preprocessing: str = param(
        "unit",
        choices=("unit", "center", "standardize"),
        help="unit: x in [0,1]; center: 2x-1; standardize: per-channel (x-mean)/std",
    )
    weight_decay: float = param(0.0, choices=(0.0, 1e-5, 1e-4, 5e-4), valid=NON_NEGATIVE)
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


def make_optimizer(params: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The recipe's optimizer; Adam and SGD in torch's fused implementation where it takes these
    parameters (the same update, one kernel for all parameters instead of a Python loop)."""
    params = list(params)
    wd = config.weight_decay
    if config.optimizer == "sgd":
        return _fused(torch.optim.SGD, params, lr=config.lr, momentum=0.9, weight_decay=wd)
    if config.optimizer == "adam":
        return _fused(torch.optim.Adam, params, lr=config.lr, weight_decay=wd)
    if config.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=config.lr, weight_decay=wd)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose sgd, adam or adadelta")


def _fused(
    cls: type[torch.optim.Optimizer], params: list[nn.Parameter], **kwargs: Any
) -> torch.optim.Optimizer:
    try:
        return cls(params, fused=True, **kwargs)  # type: ignore[call-arg]
    except (RuntimeError, ValueError, TypeError):  # a device or dtype the fused kernel lacks
        return cls(params, **kwargs)  # type: ignore[call-arg]


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
    device: torch.device | str | None = None,
) -> TrainResult:
    """Minimise ``loss_fn(*batch)`` over shuffled mini-batches of ``tensors``.

    ``tensors`` share their first dimension; each step indexes all of them with one random
    batch of indices. ``parameters`` defaults to every parameter of ``module``.

    ``device`` (default: the CPU) trains there: ``module`` and ``tensors`` are moved to it,
    ``loss_fn`` gets batches on it, and ``module`` goes back to where it was afterwards. Pass
    ``arena.core.device.current_device()`` where ``loss_fn`` is device-agnostic (holds no CPU
    tensors of its own); the batch order is drawn on the CPU, so a seed gives the same batches
    on every device.
    """
    dev = torch.device("cpu" if device is None else device)
    if dev.type == "cpu":
        return _run_loop(module, tensors, loss_fn, config, seed, parameters, callback, dev)
    home = module_device(module)
    module.to(dev)
    try:
        on_dev = [t.to(dev) for t in tensors]
        return _run_loop(module, on_dev, loss_fn, config, seed, parameters, callback, dev)
    finally:
        module.to(home)


def _run_loop(
    module: nn.Module,
    tensors: Sequence[torch.Tensor],
    loss_fn: Callable[..., torch.Tensor],
    config: TrainConfig,
    seed: int,
    parameters: Sequence[nn.Parameter] | None,
    callback: Callback | None,
    device: torch.device,
) -> TrainResult:
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
        # One shuffle per epoch, cut into whole batches (the last partial batch is dropped).
        batches = torch.randperm(n, generator=generator)[: n // bs * bs].view(-1, bs)
        batches = batches.to(device)
        total = torch.zeros((), device=device)
        for index in batches:
            loss = loss_fn(*(t.index_select(0, index) for t in tensors))  # t[index], faster
            for p in params:  # zero_grad(set_to_none=True) without its per-call overhead
                p.grad = None
            loss.backward()
            optimizer.step()
            total += loss.detach()  # summed as a tensor: no synchronising .item() per step
        steps += len(batches)
        images += len(batches) * bs
        epoch_loss = float(total) / len(batches)  # the one read of the loss per epoch
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
    Convolutional networks train in the ``channels_last`` memory format and come back in the
    ordinary one; with compilation on (:func:`set_compile`), the forward and backward pass run
    compiled.
    """
    torch.manual_seed(seed)
    init_weights(model, config.weight_init, seed)
    set_preprocessing(model, data.x, config.preprocessing)
    channels_last = any(isinstance(m, nn.Conv2d) for m in model.modules())
    handles: list[torch.utils.hooks.RemovableHandle] = []
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    try:
        bs = min(config.batch_size, len(data))
        loss_of: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
        loss_of = _classifier_loss
        if compile_enabled() and bs > 0:
            x0 = data.x[:bs]
            if channels_last:
                x0 = x0.contiguous(memory_format=torch.channels_last)
            loss_of = _compiled_loss(model, x0, data.y[:bs])
        elif channels_last:  # compiled code picks its own layouts
            handles = [
                m.register_forward_pre_hook(_gradient_in_channels_last)
                for m in model.modules()
                if isinstance(m, nn.Flatten)
            ]

        def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if batch_hook is not None:  # attacks poison on the CPU, wherever training runs
                hx, hy = batch_hook(x.cpu(), y.cpu())
                x, y = hx.to(x.device), hy.to(y.device)
            x = augment(x, config.augmentation)
            if channels_last:  # once here, not once in each of the first conv's passes
                x = x.contiguous(memory_format=torch.channels_last)
            return loss_of(model, x, y)

        return run_loop(
            model,
            (data.x, data.y),
            loss_fn,
            config,
            seed=seed,
            callback=callback,
            device=current_device(),
        )
    finally:
        for handle in handles:
            handle.remove()
        if channels_last:  # model files (safetensors) hold contiguous tensors
            model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


def _gradient_in_channels_last(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    """Flatten's backward hands its input a gradient in the NCHW layout; turn it back into
    channels_last before the layer below (a max-pool) sees it: torch's max-pool backward on
    mixed layouts converts both tensors and costs several times the same-layout kernel."""
    x = args[0] if args else None
    if (
        isinstance(x, torch.Tensor)
        and x.requires_grad
        and x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        x.register_hook(lambda g: g.contiguous(memory_format=torch.channels_last))


def _classifier_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


# --------------------------------------------------------------------------- compilation

COMPILE_ENV = "ARENA_COMPILE"
_compile_setting: bool | None = None
_compile_failure: str | None = None
_compiled: Callable[..., torch.Tensor] | None = None
_compile_seconds: dict[tuple[str, tuple[int, ...], str], float] = {}


def set_compile(enabled: bool | None) -> None:
    """Compile the training step of :func:`train_classifier` (``True``), never (``False``), or
    as the ``ARENA_COMPILE`` environment variable says (``None``, the default; off unless it is
    ``1``). Compiled code is reused by every later model of the same network and batch shape."""
    global _compile_setting
    _compile_setting = enabled


def compile_enabled() -> bool:
    """Whether :func:`train_classifier` compiles: asked for, and not found unavailable."""
    if _compile_failure is not None:
        return False
    if _compile_setting is not None:
        return _compile_setting
    return os.environ.get(COMPILE_ENV, "0").strip().lower() in {"1", "true", "yes", "on"}


def compile_seconds() -> dict[tuple[str, tuple[int, ...], str], float]:
    """Seconds each compilation of this process took, by (network, batch shape, dtype)."""
    return dict(_compile_seconds)


def _compiled_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The compiled ``_classifier_loss`` for ``model`` and batches like ``(x, y)``, compiled
    now if this network and shape are new to the process, or ``_classifier_loss`` itself (with
    one log line) where compiling fails.

    A new shape is compiled on a copy of the model with the RNG state saved, so compiling changes
    neither the model (batch-norm statistics) nor the random stream the training draws from.
    Dynamo keys its compiled graphs by the network's structure and the tensors' shapes, so a
    later model of the same architecture and batch shape reuses them without compiling.
    """
    global _compiled, _compile_failure
    key = (repr(model), tuple(x.shape), str(x.dtype))
    if key in _compile_seconds and _compiled is not None:
        return _compiled
    start = time.perf_counter()
    try:
        if _compiled is None:
            from torch import _dynamo

            # One graph per (network, shape, train/eval): more than dynamo's default 8 per
            # function when a process trains several architectures and batch sizes.
            _dynamo.config.recompile_limit = max(_dynamo.config.recompile_limit, 64)
            _compiled = torch.compile(_classifier_loss, dynamic=False)
        probe = copy.deepcopy(model)
        probe.train()
        with torch.random.fork_rng(devices=[]):
            _compiled(probe, x, y).backward()
    except Exception as exc:  # noqa: BLE001 - any failure to compile means: train eagerly
        first_line = (str(exc).strip().splitlines() or [""])[0][:200]
        _compile_failure = f"{type(exc).__name__}: {first_line}"
        log.warning("torch.compile unavailable (%s); training eagerly", _compile_failure)
        return _classifier_loss
    seconds = time.perf_counter() - start
    _compile_seconds[key] = seconds
    log.info(
        "compiled the %s training step for batches %s in %.1fs",
        getattr(model, "arch", type(model).__name__),
        tuple(x.shape),
        seconds,
    )
    return _compiled


def training_bytes(model: nn.Module, image_shape: tuple[int, int, int], batch_size: int) -> int:
    """An estimate of the memory that training ``model`` with ``batch_size`` images of
    ``image_shape`` takes: the weights, their gradients and Adam's two moments (16 bytes per
    parameter), and every layer's output for a batch, kept for the backward pass and matched
    by its gradient (8 bytes per value). ``model`` may live on the ``meta`` device: the count
    runs one image through it there, so nothing is allocated."""
    values = 0

    def count(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal values
        if isinstance(output, torch.Tensor):
            values += output.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *image_shape, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    params = sum(p.numel() for p in model.parameters())
    return 16 * params + 8 * values * batch_size
