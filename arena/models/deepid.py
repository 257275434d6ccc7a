"""DeepID: Sun, Wang & Tang, "Deep Learning Face Representation from Predicting 10,000
Classes", CVPR 2014.

Four convolutional layers (20 4x4, 40 3x3, 60 3x3, 80 2x2 filters, ReLU), max-pooling 2x2 after
the first three, then the 160-unit DeepID layer, fully connected to both the third pooling
layer and the fourth convolutional layer (the multi-scale skip), then the classifier.

Two departures, both so the net fits the :class:`ArenaNet` mould and 16 to 224 pixel inputs:

* Convolutions are "same"-padded (even kernels padded one more on the right and bottom), so
  every conv keeps its input size and only the pools shrink it (16 -> 8 -> 4 -> 2). The
  paper's valid convolutions need at least 23 pixels, and the padding makes the pool3 and
  conv4 maps the same size, which the skip below needs. The paper's conv4 is locally
  connected with locally shared weights; here it is an ordinary convolution.
* The skip lives inside the ``conv4`` stage: it returns ``cat([pool3, relu(conv4(pool3))])``
  along channels, a ``(N, 60 + 80, H, W)`` map, and the head flattens it into the DeepID layer.
  A linear layer over the concatenation is exactly the paper's
  ``relu(W1 pool3 + W2 conv4 + b)``. Defenses that cut at ``conv4`` see both scales.

The DeepID layer's input grows with the image (140 * (H/8) * (W/8)); at 224x224 it holds
about 17.6M weights, as a fully connected layer on that map must.
"""

from __future__ import annotations

import torch
from torch import nn

from arena.models.base import ArenaNet


def _same_conv(cin: int, cout: int, k: int) -> nn.Sequential:
    """A kxk convolution that keeps the input size, padding one more right/bottom if k is even."""
    lo = (k - 1) // 2
    hi = k - 1 - lo
    return nn.Sequential(nn.ZeroPad2d((lo, hi, lo, hi)), nn.Conv2d(cin, cout, k), nn.ReLU())


class SkipConv(nn.Module):
    """``relu(conv(x))`` with its input ``x`` concatenated in front along channels."""

    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        self.conv = _same_conv(cin, cout, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(x)], dim=1)


def deepid(image_shape: tuple[int, int, int], num_classes: int) -> ArenaNet:
    c, h, w = image_shape
    if min(h, w) < 8:
        raise ValueError(f"deepid needs images of at least 8x8 pixels, got {h}x{w}")
    side = (h // 8) * (w // 8)
    stages = [
        ("conv1", _same_conv(c, 20, 4)),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", _same_conv(20, 40, 3)),
        ("pool2", nn.MaxPool2d(2)),
        ("conv3", _same_conv(40, 60, 3)),
        ("pool3", nn.MaxPool2d(2)),
        ("conv4", SkipConv(60, 80, 2)),
        (
            "head",
            nn.Sequential(
                nn.Flatten(),
                nn.Linear((60 + 80) * side, 160),  # the DeepID layer
                nn.ReLU(),
                nn.Linear(160, num_classes),
            ),
        ),
    ]
    return ArenaNet(
        "deepid",
        image_shape,
        num_classes,
        stages,
        feature_stages=("conv1", "conv2", "conv3", "conv4"),
    )
