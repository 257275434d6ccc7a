"""What the generative attacks (``iadba``, ``issba``) share: a trigger network trained on the
attacker's data with the shared loop, once per cache.

:meth:`GenerativeAttack.prepare` trains the network on the attacker's training images (or reads
it from the artifact cache) through :func:`arena.core.cache.cached_module`, keyed by the attack's
name, every config field that shapes the weights (not the poisoning rate, target or mapping),
the image shape and :func:`arena.core.cache.tensor_digest` of the training images. So one network
serves every BadNet of a duel that shares those fields, and a BadNet read from the cache still
gets the same triggers on its test set.

Training cost is bounded at any image size: the network is fully convolutional and is trained on
at most :data:`TRAIN_IMAGES` images no larger than :data:`TRAIN_SIDE` pixels a side (random
crops, or the images resized), then applied to whole images of any size.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from arena.core.cache import cached_module, tensor_digest
from arena.core.train import TrainResult
from arena.data.splits import Split
from strategies.attacks.base import Attack, AttackConfig, Poisoned

log = logging.getLogger(__name__)

TRAIN_SIDE = 32
"""Largest side of the images a trigger network is trained on."""
TRAIN_IMAGES = 1024
"""Most attacker images a trigger network is trained on."""
POISONING_FIELDS = ("poison_rate", "target", "mapping")
"""Config fields that change which images are poisoned, not the trigger network."""


def training_images(x: torch.Tensor, seed: int, view: str = "crop") -> torch.Tensor:
    """At most :data:`TRAIN_IMAGES` of images ``x`` (drawn by ``seed``), no larger than
    :data:`TRAIN_SIDE` a side: a random crop of each (``view="crop"``: the pixels keep their
    scale) or the whole image resized (``"resize"``: the image keeps its layout)."""
    generator = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    index = torch.randperm(n, generator=generator)[:TRAIN_IMAGES]
    ch, cw = min(h, TRAIN_SIDE), min(w, TRAIN_SIDE)
    if view == "resize":
        picked = x[index]
        if (ch, cw) == (h, w):
            return picked.clone()
        return F.interpolate(picked, size=(ch, cw), mode="bilinear", antialias=True).clamp(0, 1)
    if view != "crop":
        raise ValueError(f"unknown training view {view!r}; choose crop or resize")
    tops = torch.randint(0, h - ch + 1, (len(index),), generator=generator).tolist()
    lefts = torch.randint(0, w - cw + 1, (len(index),), generator=generator).tolist()
    crops = [
        x[i, :, t : t + ch, s : s + cw] for i, t, s in zip(index.tolist(), tops, lefts, strict=True)
    ]
    return torch.stack(crops).contiguous()


STAMP_BATCH = 256
"""Images per forward pass when a trained network stamps many (memory stays bounded at 224 px)."""


def in_batches(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int = STAMP_BATCH
) -> torch.Tensor:
    """``fn`` applied to ``x`` in chunks of ``size`` images, without gradients."""
    with torch.no_grad():
        return torch.cat([fn(x[i : i + size]) for i in range(0, max(1, len(x)), size)])


def conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution and leaky ReLU (padding keeps the size, stride 2 halves it); leaky, so
    that no unit of a small network dies while its input's gradient is still tiny."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.LeakyReLU(0.2))


G = TypeVar("G", bound=AttackConfig)


class GenerativeAttack(Attack[G]):
    """An attack whose triggers come from a network trained on the attacker's data.

    Subclasses give :meth:`build` (the untrained network), :meth:`fit` (its training with
    :func:`arena.core.train.run_loop`) and :attr:`network_seed` (their config's ``seed``)."""

    poisoning_fields: ClassVar[tuple[str, ...]] = POISONING_FIELDS
    """Config fields that do not shape the trigger network (left out of its cache key)."""
    train_view: ClassVar[str] = "crop"
    """How images larger than :data:`TRAIN_SIDE` are cut down for training (see
    :func:`training_images`)."""
    _network: nn.Module | None = None
    _digest: str | None = None

    @property
    @abstractmethod
    def network_seed(self) -> int:
        """Seed of the network's weights, training and training images (a config field)."""

    @abstractmethod
    def build(self) -> nn.Module:
        """The untrained trigger network for this config and image shape."""

    @abstractmethod
    def fit(self, network: nn.Module, x: torch.Tensor) -> TrainResult:
        """Train ``network`` in place on the attacker's images ``x`` in [0, 1], cut down by
        :func:`training_images`."""

    def network_spec(self, digest: str) -> dict[str, Any]:
        fields = {k: v for k, v in asdict(self.config).items() if k not in self.poisoning_fields}
        return {
            "attack": self.name,
            "config": fields,
            "image_shape": list(self.image_shape),
            "data": digest,
            "train_side": TRAIN_SIDE,
            "train_images": TRAIN_IMAGES,
            "train_view": self.train_view,
        }

    def prepare(self, train: Split) -> None:
        digest = tensor_digest(train.x)
        if self._network is not None and self._digest == digest:
            return
        seed = int(self.network_seed)

        def fit(network: nn.Module) -> None:
            result = self.fit(network, training_images(train.x, seed, self.train_view))
            log.info(
                "trained the %s trigger network in %.1fs (%d steps, %s, loss %.4f)",
                self.name,
                result.seconds,
                result.steps,
                result.status,
                result.final_loss,
            )

        self._network = cached_module(
            self.cache, f"{self.name}-generator", self.network_spec(digest), self.build, fit,
            version=self.version,
        )
        self._digest = digest

    @property
    def network(self) -> nn.Module:
        if self._network is None:
            raise RuntimeError(
                f"{self.name}'s trigger network is not trained yet: call "
                "attack.prepare(train) with the attacker's training split first"
            )
        return self._network

    def poison(self, train: Split, generator: torch.Generator) -> Poisoned:
        self.prepare(train)
        return super().poison(train, generator)
