"""Batched inference helpers shared by evaluation and defenses.

They run on :func:`arena.core.device.current_device` (the CPU unless a duel runs on a GPU): the
model is moved there for the call and back afterwards, chunks of ``x`` are sent there, and the
results come back on the CPU, so callers never handle devices.
"""

from __future__ import annotations

import torch
from torch import nn

from arena.core.device import current_device, module_device

EVAL_BATCH = 1024


def logits(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """``model(x)`` in eval mode, in chunks; the model's train/eval mode is restored after.

    A convolutional network on images runs in the ``channels_last`` layout, as it trains: on
    this CPU a small CNN's batched inference is 1.4x (16 px), 1.8x (32 px) and 1.1x (64 px)
    faster so (bench/README.md, "Inference"); the model comes back in the layout it came in."""
    was_training = model.training
    device = current_device()
    home = module_device(model)
    if home != device:  # moved outside inference mode, so its weights stay trainable
        model.to(device)
    layout = _converted(model) if x.dim() == 4 else None
    model.eval()
    try:
        with torch.inference_mode():
            return torch.cat(
                [
                    model(_in(x[i : i + batch_size].to(device), layout)).cpu()
                    for i in range(0, len(x), batch_size)
                ]
            )
    finally:
        model.train(was_training)
        if layout is not None:  # model files (safetensors) hold contiguous tensors
            model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        if home != device:
            model.to(home)


def _converted(model: nn.Module) -> torch.memory_format | None:
    """Put a convolutional ``model`` in ``channels_last`` unless it is already (a model in
    training is); the layout it was put in, or ``None`` if unchanged."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None or conv.weight.is_contiguous(memory_format=torch.channels_last):
        return None
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return torch.channels_last


def _in(x: torch.Tensor, layout: torch.memory_format | None) -> torch.Tensor:
    return x if layout is None else x.contiguous(memory_format=layout)


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """Predicted labels for ``x``."""
    if len(x) == 0:
        return torch.empty(0, dtype=torch.long)
    return logits(model, x, batch_size).argmax(dim=1)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``x`` classified as ``y``."""
    if len(x) == 0:
        return float("nan")
    return float((predict(model, x) == y).float().mean())
