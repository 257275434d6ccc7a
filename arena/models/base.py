"""The one shape every Arena network has, so that defenses can reach inside any of them.

An :class:`ArenaNet` is a named sequence of stages: ``normalize`` first (the training recipe's
preprocessing, held as buffers so a model file carries it), then the feature stages, then the
classifier ``head``. Inputs are always images in ``[0, 1]``; the network normalises them itself.
White-box defenses cut the sequence at a named stage (``split``): ABS stimulates the channels of
a feature stage, Fine-pruning prunes the last one, Februus takes GradCAM at one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; identity with the defaults."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))

    def set(self, mean: Sequence[float], std: Sequence[float]) -> None:
        with torch.no_grad():
            self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).view_as(self.mean))
            self.std.copy_(torch.as_tensor(std, dtype=torch.float32).view_as(self.std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ArenaNet(nn.Module):
    """A classifier as a named sequence of stages: ``normalize``, features..., ``head``.

    ``feature_stages`` names, in order, the stages whose output is a ``(N, C, H, W)`` feature
    map; the last of them is the network's last convolutional layer.
    """

    def __init__(
        self,
        arch: str,
        image_shape: tuple[int, int, int],
        num_classes: int,
        stages: Sequence[tuple[str, nn.Module]],
        feature_stages: Sequence[str],
    ) -> None:
        super().__init__()
        self.arch = arch
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.stages = nn.Sequential(
            OrderedDict([("normalize", Normalize(image_shape[0])), *stages])
        )
        names = list(self.stages._modules)
        if names[-1] != "head":
            raise ValueError(f"{arch}: the last stage must be named 'head', got {names[-1]!r}")
        unknown = [s for s in feature_stages if s not in names]
        if unknown or not feature_stages:
            raise ValueError(f"{arch}: feature stages {unknown or '[]'} are not stages of {names}")
        self.feature_stages = tuple(feature_stages)

    @property
    def normalize(self) -> Normalize:
        return self.stages.normalize  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def split(self, stage: str) -> tuple[nn.Sequential, nn.Sequential]:
        """The network cut after ``stage``: ``front(x)`` gives that stage's output, ``back``
        maps it to logits, and ``back(front(x)) == self(x)``. Both share this net's modules."""
        names = list(self.stages._modules)
        if stage not in names:
            raise ValueError(f"{self.arch} has no stage {stage!r}; its stages are {names}")
        k = names.index(stage) + 1
        return self.stages[:k], self.stages[k:]  # type: ignore[return-value]

    def describe(self) -> dict[str, object]:
        """The config a model file records: enough to rebuild this net before loading weights."""
        return {
            "arch": self.arch,
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
        }
