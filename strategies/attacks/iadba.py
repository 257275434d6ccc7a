"""IADBA, the input-aware dynamic backdoor: every image gets its own trigger from a generator.

Nguyen & Tran, "Input-Aware Dynamic Backdoor Attack" (NeurIPS 2020). A generator maps an image
``x`` to a pattern ``p(x)`` and a sparse mask ``m(x)``; the triggered image is
``x * (1 - m(x)) + p(x) * m(x)``. A diversity loss ``||x - x'|| / ||g(x) - g(x')||`` makes
distinct inputs get distinct triggers, a norm loss keeps the mask's area near ``mask_density``,
and the "cross-trigger" mode puts on some training images the trigger generated for another
image and keeps their true label, so that a trigger only fires on the image it was made for.

Deviation from the paper, and why: the paper trains the generator and the classifier together.
Here an attack never owns the BadNet's training loop (the BadNet's recipe is the attacker's
search space, and a duel trains many BadNets per generator), so the training is split in two:

1. the generator is trained once per config and attacker data set, with the shared loop, next
   to a small surrogate "trigger detector" instead of the classifier: the detector learns to
   tell an image carrying its own trigger from a clean image and from a cross-trigger image,
   and the generator minimises the detector's loss together with the diversity and mask
   losses, as the paper's generator minimises the classifier's. This keeps what joint
   training gives the triggers (they are learnable and tied to their image) without the labels;
2. the frozen generator then poisons ``poison_rate`` of the BadNet's training set (target
   labels) and ``cross_rate`` more with another image's trigger (true labels), in
   :meth:`IADBA.poison`.

Smaller deviations: one small encoder-decoder gives both the pattern and the mask (the paper
trains a separate mask network first), and the mask's area is held near ``mask_density`` from
both sides (the paper only bounds it from above; its classifier keeps the mask from vanishing,
which the detector here does only weakly). On digits at the defaults the BadNet reaches an ASR
of about 0.89 and gives a cross-trigger image its true label about three times in four (the
paper, training everything together for hundreds of epochs, reports more on both).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from arena.core.config import AT_LEAST_ONE, NON_NEGATIVE, SEED, UNIT, fixed, param
from arena.core.train import TrainConfig, TrainResult, run_loop
from arena.data.splits import Split
from strategies.attacks.base import AttackConfig, Poisoned
from strategies.attacks.generative import POISONING_FIELDS, GenerativeAttack, conv, in_batches
from strategies.registry import register_attack

AREA_WEIGHT = 10.0
"""Weight of the mask-area loss ``mean |area(m(x)) - mask_density|``."""
DIVERSITY_SCALE = 0.1
"""On digits the diversity loss of an untrained (nearly constant) generator is in the hundreds
and a trained one's about 1: scaled so that it drives the start of training without swamping
the detector's and area losses later (``lambda_div = 1`` is the paper's weight)."""


@dataclass(frozen=True)
class IADBAConfig(AttackConfig):
    mask_density: float = param(
        0.06, low=0.03, high=0.12, valid=UNIT, help="share of the image the trigger mask covers"
    )
    cross_rate: float = param(
        0.1,
        low=0.0,
        high=0.2,
        valid=UNIT,
        help="share of training images with another image's trigger",
    )
    lambda_div: float = param(
        1.0, low=0.25, high=4.0, log=True, valid=NON_NEGATIVE, help="weight of diversity"
    )
    epochs: int = fixed(
        10, valid=AT_LEAST_ONE, help="generator training passes over the attacker's images"
    )
    width: int = fixed(8, valid=AT_LEAST_ONE, help="channels of the generator's first layer")
    seed: int = fixed(0, valid=SEED, help="seed of the generator's weights and training")


class TriggerGenerator(nn.Module):
    """A small fully convolutional encoder-decoder: image -> (pattern, mask), any size."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.encode = nn.Sequential(conv(channels, width), conv(width, 2 * width, stride=2))
        self.middle = conv(2 * width, 2 * width)
        self.decode = nn.Sequential(conv(3 * width, width), nn.Conv2d(width, channels + 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.encode[0](x)
        deep = self.middle(self.encode[1](skip))
        up = F.interpolate(deep, size=x.shape[-2:], mode="bilinear", align_corners=False)
        out = self.decode(torch.cat([skip, up], dim=1))
        return torch.sigmoid(out[:, :-1]), torch.sigmoid(out[:, -1:])


def apply_trigger(x: torch.Tensor, pattern: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x * (1 - mask) + pattern * mask``."""
    return x + mask * (pattern - x)


def diversity_loss(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Nguyen & Tran's ``mean ||x - x'|| / ||g(x) - g(x')||`` with ``x'`` the next image of the
    (shuffled) batch: small when different inputs get different outputs."""
    dx = (x - x.roll(1, 0)).flatten(1).norm(dim=1)
    dg = (out - out.roll(1, 0)).flatten(1).norm(dim=1)
    return (dx / (dg + 1e-3)).mean()


def detector(channels: int, width: int) -> nn.Sequential:
    """The surrogate that stands in for the classifier while the generator trains."""
    return nn.Sequential(
        conv(channels, width),
        nn.MaxPool2d(2),
        conv(width, 2 * width),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, 1),
    )


@register_attack
class IADBA(GenerativeAttack[IADBAConfig]):
    name = "iadba"
    version = 1
    summary = "input-aware dynamic triggers (pattern and mask) from a generator; Nguyen & Tran"
    config_cls = IADBAConfig
    poisoning_fields = (*POISONING_FIELDS, "cross_rate")

    @property
    def network_seed(self) -> int:
        return self.config.seed

    def build(self) -> TriggerGenerator:
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            return TriggerGenerator(self.image_shape[0], cfg.width)

    def fit(self, network: nn.Module, x: torch.Tensor) -> TrainResult:
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 1)
            surrogate = detector(self.image_shape[0], cfg.width)
        both = nn.ModuleDict({"generator": network, "detector": surrogate})
        labels = torch.tensor([1.0, 0.0, 0.0])

        def loss(xb: torch.Tensor) -> torch.Tensor:
            pattern, mask = network(xb)
            own = apply_trigger(xb, pattern, mask)
            cross = apply_trigger(xb, pattern.roll(1, 0), mask.roll(1, 0))
            scores = surrogate(torch.cat([own, xb, cross])).view(3, -1)
            target = labels.view(3, 1).expand_as(scores)
            detect = F.binary_cross_entropy_with_logits(scores, target)
            area = (mask.flatten(1).mean(dim=1) - cfg.mask_density).abs().mean()
            div = diversity_loss(xb, pattern) + diversity_loss(xb, mask)
            return detect + AREA_WEIGHT * area + cfg.lambda_div * DIVERSITY_SCALE * div

        recipe = TrainConfig(optimizer="adam", lr=1e-2, batch_size=64, epochs=cfg.epochs)
        return run_loop(both, (x,), loss, recipe, seed=cfg.seed)

    def triggers(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's pattern and mask for images ``x``."""
        both = in_batches(lambda xb: torch.cat(self.network(xb), dim=1), x)
        return both[:, :-1], both[:, -1:]

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return apply_trigger(x, *self.triggers(x)).clamp(0.0, 1.0)

    def poison(self, train: Split, generator: torch.Generator) -> Poisoned:
        cfg = self.config
        out = super().poison(train, generator)
        cross = self.choose(~out.poisoned, round(cfg.cross_rate * len(train)), generator)
        if len(cross):
            x = out.data.x
            # each cross image takes the trigger of a different, randomly drawn training image
            donors = cross + torch.randint(1, len(train), (len(cross),), generator=generator)
            pattern, mask = self.triggers(train.x[donors % len(train)])
            x[cross] = apply_trigger(x[cross], pattern, mask).clamp(0.0, 1.0)
        return out
