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
    """``model(x)`` in eval mode, in chunks; the model's train/eval mode is restored after."""
    was_training = model.training
    device = current_device()
    home = module_device(model)
    if home != device:  # moved outside inference mode, so its weights stay trainable
        model.to(device)
    model.eval()
    try:
        with torch.inference_mode():
            return torch.cat(
                [
                    model(x[i : i + batch_size].to(device)).cpu()
                    for i in range(0, len(x), batch_size)
                ]
            )
    finally:
        model.train(was_training)
        if home != device:
            model.to(home)


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
