"""Fine-pruning: prune the channels that clean inputs leave dormant, then fine-tune.

Liu, Dolan-Gavitt & Garg, "Fine-Pruning: Defending Against Backdooring Attacks on Deep Neural
Networks" (RAID 2018). A backdoor often lives in neurons that clean inputs barely excite, so the
defender ranks the channels of the network's last convolutional layer by their mean activation
on its clean validation data and prunes them, least active first; the pruned network is then
fine-tuned on the same clean data, which also repairs what pruning alone leaves (the paper's
pruning-aware attack hides the backdoor in active neurons that fine-tuning then overwrites).

Pruning stops at ``ratio`` of the channels, or earlier, before the channel whose removal drops
clean validation accuracy more than ``tolerance`` below the unpruned network's (the paper stops
at a 4% drop; its ratio is the outcome, here a cap the defender searches too). Fine-tuning
runs through the shared loop (:func:`strategies.defenses.tuning.fine_tune`).

Arena's networks prune at their last feature stage (:attr:`ArenaNet.feature_stages`): the
repaired copy wraps that stage with a :class:`ChannelMask` that zeroes the pruned channels, so
it works for any architecture and the pruned channels stay pruned while fine-tuning. On wide
layers accuracy along the pruning order is checked every ``ceil(C / 64)`` channels rather than
after each one.

Fine-tuning uses Adam with a cosine decay from ``lr`` = 1e-2, about three times the default
BadNet recipe's rate. Measured on the default digits BadNet (seeds 0-2): its last stage is
batch-normalised, so every channel is about equally active on clean data (mean activations
0.39-0.51) and pruning to the 4% drop removes only 10-13 of 32 channels and leaves 59-93% attack
success; fine-tuning then needs this rate (at 1e-3 to 5e-3, 30-80% of the attack survives), and
at it the pruning still matters (seed 2: payoff 0.02 pruned, 0.45 fine-tuned alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from arena.core.config import NON_NEGATIVE, POSITIVE, UNIT, param
from arena.core.infer import accuracy, logits
from arena.data.splits import Split
from arena.models.base import ArenaNet
from strategies.defenses.base import Defense, DefenseConfig, Deployment, Panel
from strategies.defenses.tuning import fine_tune
from strategies.registry import register_defense

MAX_CHECKS = 64  # accuracy evaluations along the pruning order, at most


@dataclass(frozen=True)
class FinePruningConfig(DefenseConfig):
    ratio: float = param(
        0.8, low=0.1, high=0.95, valid=UNIT, help="most channels pruned, as a share"
    )
    tolerance: float = param(
        0.04,
        low=0.0,
        high=0.1,
        valid=UNIT,
        help="stop before clean val accuracy drops more than this",
    )
    epochs: int = param(
        10, low=0, high=20, valid=NON_NEGATIVE, help="fine-tuning epochs on the clean data"
    )
    lr: float = param(
        1e-2, low=1e-4, high=3e-2, log=True, valid=POSITIVE, help="fine-tuning learning rate"
    )


class ChannelMask(nn.Module):
    """Multiplies channel ``c`` of a ``(N, C, ...)`` tensor by ``keep[c]`` (0: pruned)."""

    keep: Tensor

    def __init__(self, keep: Tensor) -> None:
        super().__init__()
        self.register_buffer("keep", keep.float().clone())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.keep.view(1, -1, *([1] * (x.dim() - 2)))


def channel_means(front: nn.Module, x: Tensor) -> Tensor:
    """Mean activation of each channel of ``front(x)`` over images and positions: ``(C,)``.
    Every module's train/eval mode is left as it was: ``front`` is a new container of another
    network's stages (:meth:`ArenaNet.split`), whose own mode says nothing of theirs, and
    :func:`arena.core.infer.logits` would give them its mode on the way out."""
    modes = [(m, m.training) for m in front.modules()]
    try:
        h = logits(front, x)
    finally:
        for m, mode in modes:
            m.training = mode
    return h.transpose(0, 1).flatten(1).mean(dim=1)


def prune_count(
    back: nn.Module, h: Tensor, y: Tensor, order: Tensor, most: int, tolerance: float
) -> tuple[int, list[float]]:
    """How many channels of ``order`` (least active first) to prune, at most ``most``: the
    largest checked count whose accuracy on features ``h`` with labels ``y`` stays within
    ``tolerance`` of the unpruned accuracy, scanning up to the first count that does not.
    Also the accuracies at the checked counts ``0, step, 2 step, ...``."""
    step = max(1, math.ceil(h.shape[1] / MAX_CHECKS))
    keep = torch.ones(h.shape[1])
    accuracies: list[float] = []
    count = 0
    for k in range(0, most + 1, step):
        keep[order[:k]] = 0.0
        acc = float((logits(back, h * keep.view(1, -1, 1, 1)).argmax(1) == y).float().mean())
        accuracies.append(acc)
        if acc < accuracies[0] - tolerance:
            break
        count = k
    return count, accuracies


@dataclass
class FinePruningDeployment(Deployment):
    original: ArenaNet | None = None  # the model as given (read, never changed), for show
    stage: str = ""
    pruned: Tensor | None = None  # channel indices, least active first

    @classmethod
    def served_model(
        cls, given: nn.Module, state: dict[str, Tensor], fields: dict[str, Any]
    ) -> nn.Module:
        """The given network's copy with its last stage wrapped in a :class:`ChannelMask`, as
        :meth:`FinePruning.fit_copy` wraps it (the mask's values come with the weights)."""
        stage = fields["stage"]
        keep = state[f"stages.{stage}.1.keep"]
        assert isinstance(given, ArenaNet)
        wrapped = nn.Sequential(getattr(given.stages, stage), ChannelMask(torch.ones_like(keep)))
        setattr(given.stages, stage, wrapped)
        return given


@register_defense
class FinePruning(Defense[FinePruningConfig]):
    name = "fine-pruning"
    version = 1
    summary = "prune channels dormant on clean data in the last conv layer, fine-tune; Liu et al."
    kind = "purifier"
    access = "white-box"
    config_cls = FinePruningConfig

    def fit(self, model: nn.Module, clean: Split) -> Deployment:
        """As :meth:`Defense.fit` (the repair works on a copy); the deployment also keeps
        ``model`` as given, only ever read, for :meth:`show`."""
        deployment = super().fit(model, clean)  # which refuses anything but an ArenaNet
        assert isinstance(deployment, FinePruningDeployment) and isinstance(model, ArenaNet)
        deployment.original = model
        return deployment

    def fit_copy(self, model: ArenaNet, clean: Split) -> Deployment:
        cfg = self.config
        net = model.eval()
        stage = net.feature_stages[-1]
        front, back = net.split(stage)
        h = logits(front, clean.x)  # the last stage's feature maps of the clean images
        activation = h.transpose(0, 1).flatten(1).mean(dim=1)  # as channel_means
        order = torch.sort(activation, stable=True).indices
        channels = len(order)
        count, checked = prune_count(
            back, h, clean.y, order, int(cfg.ratio * channels), cfg.tolerance
        )
        keep = torch.ones(channels)
        keep[order[:count]] = 0.0
        setattr(net.stages, stage, nn.Sequential(getattr(net.stages, stage), ChannelMask(keep)))
        pruned_acc = accuracy(net, clean.x, clean.y)
        fine_tune(net, clean, epochs=cfg.epochs, lr=cfg.lr, seed=self.seed)
        net.requires_grad_(False)
        details = {
            "layer": stage,
            "channels": channels,
            "pruned": count,
            "pruned_channels": order[:count].tolist(),
            "val_accuracy": {
                "before": checked[0],
                "pruned": pruned_acc,
                "fine_tuned": accuracy(net, clean.x, clean.y),
            },
        }
        return FinePruningDeployment(net, details=details, stage=stage, pruned=order[:count])

    def show(self, deployment: Deployment, clean: Split, triggered: Split) -> list[Panel]:
        if not isinstance(deployment, FinePruningDeployment) or deployment.original is None:
            return []
        front, _ = deployment.original.split(deployment.stage)
        on_clean, on_triggered = channel_means(front, clean.x), channel_means(front, triggered.x)
        pruned = torch.zeros(len(on_clean), dtype=torch.bool)
        if deployment.pruned is not None:
            pruned[deployment.pruned] = True
        threshold = float(on_clean[pruned].max()) if pruned.any() else None
        return [
            Panel(
                f"mean activation per channel of {deployment.stage} before pruning "
                "(line: the most active pruned channel on clean images)",
                "histogram",
                {"clean images": on_clean, "triggered images": on_triggered},
                marker=threshold,
            ),
            Panel(
                f"activation by triggered images: {int(pruned.sum())} pruned channels against "
                f"{int((~pruned).sum())} kept",
                "histogram",
                {"pruned channels": on_triggered[pruned], "kept channels": on_triggered[~pruned]},
            ),
        ]
