"""The in-memory form every dataset takes: three splits of image tensors.

Images are float32 tensors of shape ``(N, C, H, W)`` with values in ``[0, 1]``; labels are
int64 tensors of shape ``(N,)``. Holding whole splits as tensors keeps the training loop free
of per-sample Python (see ``arena/core/train.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Split:
    """One split: images ``x`` (N, C, H, W) in [0, 1] and labels ``y`` (N,)."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(self.x.shape)}")
        if self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]:
            raise ValueError(
                f"labels must be (N,) with N={self.x.shape[0]}, got shape {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: torch.Tensor) -> Split:
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True)
class Splits:
    """A dataset as the game sees it.

    ``train`` is the attacker's (the BadNet is trained on it), ``val`` is the defender's small
    held-out clean set, ``test`` scores every cell.
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.x.shape[1:]
        return (int(c), int(h), int(w))
