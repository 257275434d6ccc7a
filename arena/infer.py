"""Batched inference helpers shared by evaluation and defenses."""

from __future__ import annotations

import torch
from torch import nn

EVAL_BATCH = 1024


@torch.inference_mode()
def logits(model: nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
    """``model(x)`` in eval mode, in chunks; the model's train/eval mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


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
