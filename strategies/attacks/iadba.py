"""IADBA, the input-aware dynamic backdoor: every image gets its own trigger from a generator.

Nguyen & Tran, "Input-Aware Dynamic Backdoor Attack" (NeurIPS 2020). A generator maps an image
``x`` to a pattern ``p(x)`` and a sparse mask ``m(x)``; the triggered image is
``x * (1 - m(x)) + p(x) * m(x)``. A diversity loss ``||x - x'|| / ||g(x) - g(x')||`` makes
distinct inputs get distinct triggers, a norm loss keeps the mask's area near ``mask_density``,
and the "cross-trigger" mode puts on some training images the trigger generated for another
image and keeps their true label, so that a trigger only fires on the image it was made for.

As in the paper, the generator and the classifier train together: while the BadNet trains
(with its recipe, the attacker's search space, in the shared loop), every batch gets a fresh
``poison_rate`` share of images with their own trigger (target labels) and ``cross_rate`` with
another image's trigger (true labels), generated with gradients; the classifier's loss reaches
the generator through them, and the generator takes an Adam step on it, with the diversity and
mask losses, before the next batch (:meth:`IADBA.training_set`). The generator so trained is
the BadNet's own: its poisoned test set uses it, and it is kept beside the BadNet in the cache.

Deviation from the paper, and why: the generator does not start from random weights. It is
first trained once per config and attacker data set (and cached) next to a small surrogate
"trigger detector" instead of the classifier: the detector learns to tell an image carrying
its own trigger from a clean image and from a cross-trigger image, and the generator minimises
the detector's loss with the diversity and mask losses. The joint training then starts from
it, so that a BadNet's 20 epochs are spent on the backdoor, not on a generator learning what a
trigger is (the paper trains for hundreds of epochs). :meth:`IADBA.poison` poisons a set once
with that warm-start generator, for callers that need one fixed poisoned set; ``arena train``'s
model file holds the classifier only, so ``arena defend`` on it measures attack success with
the warm-start generator, not the jointly trained one (``arena evaluate`` and duels use the
jointly trained one).

Smaller deviations: one small encoder-decoder gives both the pattern and the mask (the paper
trains a separate mask network first), and the mask's area is held near ``mask_density`` from
both sides (the paper only bounds it from above; its classifier keeps the mask from vanishing,
which the detector here does only weakly).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from arena.core.config import AT_LEAST_ONE, NON_NEGATIVE, SEED, UNIT, fixed, param
from arena.core.train import BatchHook, TrainConfig, TrainResult, run_loop
from arena.data.splits import Split
from strategies.attacks.base import AttackConfig, Poisoned
from strategies.attacks.generative import POISONING_FIELDS, GenerativeAttack, conv, in_batches
from strategies.registry import register_attack

AREA_WEIGHT = 10.0
"""Weight of the mask-area loss ``mean |area(m(x)) - mask_density|``."""
JOINT_LR = 1e-3
"""Adam's learning rate for the generator while it trains with the classifier (a tenth of its
warm-start training's: it refines the triggers the classifier learns, rather than redraws them)."""
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
    version = 2
    summary = "input-aware dynamic triggers (pattern and mask) from a generator; Nguyen & Tran"
    config_cls = IADBAConfig
    poisoning_fields = (*POISONING_FIELDS, "cross_rate")
    trains_with_badnet = True
    _joint: TriggerGenerator | None = None

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

    def training_set(
        self, train: Split, generator: torch.Generator
    ) -> tuple[Split, BatchHook | None]:
        """The clean set, and a hook that trains a copy of the warm-start generator together
        with the classifier (see the module docstring): each call first steps the generator
        on the gradient the classifier's loss left on it in the previous batch, then poisons
        the new batch with triggers made with gradients."""
        cfg = self.config
        self.prepare(train)
        joint = copy.deepcopy(self.network).train().requires_grad_(True)
        assert isinstance(joint, TriggerGenerator)
        optimizer = torch.optim.Adam(joint.parameters(), lr=JOINT_LR)
        own = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        self._joint = joint

        def per_batch(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if any(p.grad is not None for p in joint.parameters()):
                optimizer.step()  # on the classifier's loss of the previous batch, and ours
                optimizer.zero_grad()
            n = len(x)
            poisoned = self.choose(self.eligible(y), round(cfg.poison_rate * n), own)
            rest = torch.ones(n, dtype=torch.bool)
            rest[poisoned] = False
            cross = self.choose(rest, round(cfg.cross_rate * n), own)
            if len(poisoned) + len(cross) == 0:
                return x, y
            donors = (cross + torch.randint(1, n, (len(cross),), generator=own)) % n
            made_for = torch.cat([x[poisoned], x[donors]])  # each trigger's own image
            pattern, mask = joint(made_for)
            source = torch.cat([x[poisoned], x[cross]])
            stamped = apply_trigger(source, pattern, mask).clamp(0.0, 1.0)
            area = (mask.flatten(1).mean(dim=1) - cfg.mask_density).abs().mean()
            div = diversity_loss(made_for, pattern) + diversity_loss(made_for, mask)
            own_loss = AREA_WEIGHT * area + cfg.lambda_div * DIVERSITY_SCALE * div
            own_loss.backward(retain_graph=True)  # the classifier's loss adds to these grads
            index = torch.cat([poisoned, cross])
            x = x.index_put((index,), stamped)
            y = y.clone()
            y[poisoned] = self.target_of(y[poisoned])
            return x, y

        return train, per_batch

    def badnet_part(self) -> nn.Module | None:
        return self._joint

    def load_badnet_part(self, state: dict[str, torch.Tensor]) -> None:
        joint = self.build()
        joint.load_state_dict(state)
        self._joint = joint.eval().requires_grad_(False)

    @property
    def network(self) -> nn.Module:
        """The generator trained together with the BadNet once there is one, else the
        warm-start generator."""
        if self._joint is not None:
            return self._joint.eval().requires_grad_(False)
        return super().network

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
