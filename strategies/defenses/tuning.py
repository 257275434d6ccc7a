"""Fine-tuning a repaired copy of a model on the defender's clean data, through the one loop.

Defenses that retrain (Fine-pruning after pruning, DeepSweep under augmentation) share this
helper so that none of them owns a training loop: it builds a cross-entropy loss, optionally
transforming each batch, and hands it to :func:`arena.core.train.run_loop`. Unlike
:func:`arena.core.train.train_classifier` it neither re-initialises weights nor resets the network's
input normalisation, which belong to the model under repair.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from arena.core.train import TrainConfig, TrainResult, run_loop
from arena.data.splits import Split
from arena.models.base import ArenaNet

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""Changes a batch of images, drawing any randomness from the generator it is given."""


def fine_tune(
    model: ArenaNet,
    data: Split,
    *,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 32,
    schedule: str = "cosine",
    transform: Transform | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``data`` with Adam for ``epochs`` (none: nothing changes);
    ``transform`` changes each batch (augmentation), seeded from ``seed``. The model is left
    in eval mode with no gradients held."""
    recipe = TrainConfig(
        optimizer="adam", lr=lr, batch_size=batch_size, epochs=epochs, schedule=schedule
    )
    generator = torch.Generator().manual_seed(seed + 1)

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if transform is not None:
            x = transform(x, generator)
        return F.cross_entropy(model(x), y)

    model.requires_grad_(True)
    try:
        return run_loop(model, (data.x, data.y), loss_fn, recipe, seed=seed)
    finally:
        for p in model.parameters():
            p.grad = None
        model.eval()
