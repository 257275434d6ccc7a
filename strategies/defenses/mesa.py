"""MESA: model the distribution of valid triggers with generators, then unlearn samples of it.

Qiao, Yang & Li, "Defending Neural Backdoors via Generative Distribution Modeling" (NeurIPS
2019). A backdoored network answers its target not for one trigger but for a whole region of
trigger space; unlearning one reversed trigger (Neural Cleanse) leaves the rest of that region
working. MESA, the max-entropy staircase approximator, models the region with ``levels``
small generators ``G_i(z)`` (an MLP from Gaussian noise to a square patch), one per confidence
level ``beta_i = beta * i / levels``: each is trained to put its triggers where the target's
softmax ``f_t`` on stamped clean images reaches ``beta_i``, while spreading them as widely as it
can (maximum entropy), by minimising ``E[max(0, beta_i - f_t(x + G_i(z)))] - alpha H(G_i)``.
The staircase mixture (a level drawn uniformly, then ``z``) approximates the distribution of
valid triggers. The defense fine-tunes a copy of the model on the defender's clean images with
``unlearn_share`` of each batch stamped with freshly sampled triggers and kept at their true
labels.

The paper is handed the target label and the trigger's size; here both are hyper-parameters the
defender searches, as is the place the trigger is stamped. ``target=-1`` and ``location="scan"``
let a probe choose: one patch pattern per (class, place) candidate, over every class and the
five named places (four corners at a margin, the centre; ``strategies/attacks/triggers.py``), is
optimised for ``probe_steps`` steps towards its class on clean images of other classes, and the
candidate that sends most held images to its class is modelled (the paper's first step, finding
the target class). ``trigger_size`` is the patch side as a share of the image side.

Deviations, with reasons:

* The entropy ``H(G_i)`` is a nearest-neighbour (Kozachenko-Leonenko) estimate over each batch
  of generated triggers, the mean log distance of a trigger to its nearest other one, instead
  of the paper's mutual-information network (MINE): no second network to train, and the same
  push towards spread-out triggers.
* Validity is a hinge on each stamped image's target probability rather than on its mean over
  images, so one batch trains every level on different images and noise at once.
* The generators are trained through ``arena.core.train.run_loop`` over the defender's clean images
  of other classes, all levels in one module, and cached by (model weights, clean data, target,
  place, generator settings, seed) with ``arena.core.cache.cached_module``.

``kind="purifier"``: the payoff is the ASR of the unlearned model (no input is rejected or
changed). White-box: it back-propagates through the network and fine-tunes its weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from arena.core.cache import cached_module, tensor_digest
from arena.core.config import (
    AT_LEAST_ONE,
    LAST_CLASS,
    NON_NEGATIVE,
    POSITIVE,
    SHARE,
    UNIT,
    Valid,
    param,
)
from arena.core.train import TrainConfig, run_loop
from arena.data.splits import Split
from arena.models.base import ArenaNet
from strategies.attacks.triggers import CORNER_SIZE, LOCATIONS, corner, side_pixels
from strategies.defenses.base import Defense, DefenseConfig, Deployment, Panel
from strategies.defenses.reversal import frozen_copy, unlearn, weights_digest
from strategies.registry import register_defense

NOISE_DIM = 16
HIDDEN = 64
GEN_BATCH = 32
PROBE_BATCH = 16


@dataclass(frozen=True)
class MesaConfig(DefenseConfig):
    target: int = param(
        -1, low=-1, high=LAST_CLASS, valid=Valid(-1), help="class modelled; -1: the probe's pick"
    )
    trigger_size: float = param(
        0.25, low=0.1, high=0.4, valid=CORNER_SIZE, help="trigger side / image side"
    )
    location: str = param("scan", choices=("scan", *LOCATIONS), help="scan: the probe's pick")
    probe_steps: int = param(
        40, low=20, high=100, valid=AT_LEAST_ONE, help="steps of each probe pattern"
    )
    levels: int = param(3, low=1, high=5, valid=AT_LEAST_ONE, help="generators of the staircase")
    beta: float = param(
        0.9, low=0.5, high=0.99, valid=SHARE, help="top confidence level; beta_i = beta i/L"
    )
    alpha: float = param(
        0.1, low=0.01, high=1.0, log=True, valid=NON_NEGATIVE, help="weight of the entropy term"
    )
    gen_steps: int = param(
        300, low=100, high=600, valid=AT_LEAST_ONE, help="generator training steps"
    )
    gen_lr: float = param(
        1e-3, low=3e-4, high=3e-3, log=True, valid=POSITIVE, help="generators' Adam lr"
    )
    unlearn_share: float = param(
        0.2, low=0.1, high=0.5, valid=UNIT, help="share of a batch stamped"
    )
    unlearn_epochs: int = param(
        10, low=2, high=30, valid=NON_NEGATIVE, help="fine-tuning passes over clean data"
    )
    unlearn_lr: float = param(
        1e-3, low=1e-4, high=5e-3, log=True, valid=POSITIVE, help="fine-tuning Adam lr"
    )


class TriggerStaircase(nn.Module):
    """``levels`` generators, each an MLP from ``NOISE_DIM`` Gaussian noise to a
    ``(channels, side, side)`` patch in ``[0, 1]``."""

    def __init__(self, levels: int, channels: int, side: int) -> None:
        super().__init__()
        self.shape = (channels, side, side)
        self.generators = nn.ModuleList(
            nn.Sequential(
                nn.Linear(NOISE_DIM, HIDDEN),
                nn.ReLU(),
                nn.Linear(HIDDEN, HIDDEN),
                nn.ReLU(),
                nn.Linear(HIDDEN, channels * side * side),
                nn.Sigmoid(),
            )
            for _ in range(levels)
        )

    def forward(self, z: Tensor) -> Tensor:
        """Triggers (L, N, C, s, s) from noise ``z`` (L, N, NOISE_DIM), level by level."""
        out = torch.stack([g(zi) for g, zi in zip(self.generators, z, strict=True)])
        return out.view(*z.shape[:2], *self.shape)

    def sample(self, n: int, gen: torch.Generator) -> Tensor:
        """``n`` triggers (n, C, s, s) from the mixture: a uniform level, then noise."""
        z = torch.randn((len(self.generators), n, NOISE_DIM), generator=gen)
        level = torch.randint(len(self.generators), (n,), generator=gen)
        return self(z)[level, torch.arange(n)]


def nn_entropy(samples: Tensor) -> Tensor:
    """Kozachenko-Leonenko entropy estimate up to constants and scale: the mean log distance
    of each of the (..., N, D) samples to its nearest other one."""
    d = torch.cdist(samples, samples)
    d = d + torch.diag_embed(torch.full(d.shape[:-1], float("inf")))
    return (d.amin(dim=-1) + 1e-6).log().mean(dim=-1)


def paste_at(x: Tensor, patch: Tensor, top: int, left: int) -> Tensor:
    """``x`` (..., C, H, W) with ``patch`` (..., C, s, s) over the box at ``(top, left)``; the
    leading dimensions broadcast."""
    s = patch.shape[-1]
    lead = torch.broadcast_shapes(x.shape[:-3], patch.shape[:-3])
    out = x.expand(*lead, *x.shape[-3:]).clone()
    out[..., top : top + s, left : left + s] = patch
    return out


@dataclass
class MesaDeployment(Deployment):
    samples: Tensor | None = None  # (levels, n, C, s, s): triggers drawn from each level
    place: tuple[int, int] = (0, 0)


@register_defense
class Mesa(Defense[MesaConfig]):
    name = "mesa"
    version = 1
    summary = "model the trigger distribution with max-entropy generators, unlearn; Qiao et al."
    kind = "purifier"
    access = "white-box"
    config_cls = MesaConfig

    def fit_copy(self, model: ArenaNet, clean: Split) -> Deployment:
        cfg = self.config
        if cfg.target >= model.num_classes:
            raise ValueError(
                f"mesa target {cfg.target} is not a class (0..{model.num_classes - 1}); "
                "use -1 to let the probe choose"
            )
        gen = self.generator()
        net = frozen_copy(model)
        c, h, w = clean.x.shape[1:]
        side = side_pixels(cfg.trigger_size, min(h, w))
        classes = list(range(model.num_classes)) if cfg.target < 0 else [cfg.target]
        places = LOCATIONS if cfg.location == "scan" else (cfg.location,)
        boxes = [corner(p, side, h, w) for p in places]
        table = self._probe(net, clean, classes, boxes, side, gen)  # (classes, places)
        best = int(table.argmax())
        target, (top, left) = classes[best // len(boxes)], boxes[best % len(boxes)]
        others = clean.subset((clean.y != target).nonzero().flatten())
        if len(others) == 0:
            raise ValueError(f"mesa needs clean images of classes other than {target}")
        spec = {
            "model": weights_digest(model),
            "data": tensor_digest(clean.x, clean.y),
            "target": target,
            "box": [top, left, side],
            "config": {
                k: getattr(cfg, k) for k in ("levels", "beta", "alpha", "gen_steps", "gen_lr")
            },
            "seed": self.seed,
        }
        staircase = cached_module(
            self.cache,
            "mesa-staircase",
            spec,
            lambda: TriggerStaircase(cfg.levels, c, side),
            lambda s: self._train(s, net, others, target, (top, left)),
            version=self.version,
        )
        served = unlearn(
            model,
            clean,
            lambda x, g: paste_at(x, staircase.sample(len(x), g), top, left),
            share=cfg.unlearn_share,
            epochs=cfg.unlearn_epochs,
            lr=cfg.unlearn_lr,
            seed=self.seed,
        )
        with torch.no_grad():
            z = torch.randn((cfg.levels, 8, NOISE_DIM), generator=gen)
            samples = staircase(z)
            probe_x = others.x[: min(64, len(others))]
            stamped = paste_at(probe_x[None, None], samples[:, :, None], top, left)
            p = net(stamped.flatten(0, 2)).softmax(dim=1)[:, target]
            validity = p.view(cfg.levels, -1).mean(dim=1)
        details = {
            "target": target,
            "place": places[best % len(boxes)],
            "trigger_side": side,
            "probe": {
                str(k): {p: float(v) for p, v in zip(places, row, strict=True)}
                for k, row in zip(classes, table, strict=True)
            },
            "levels": [
                {"beta": cfg.beta * (i + 1) / cfg.levels, "mean_target_probability": float(v)}
                for i, v in enumerate(validity)
            ],
        }
        return MesaDeployment(served, details=details, samples=samples, place=(top, left))

    def _probe(
        self,
        net: nn.Module,
        clean: Split,
        classes: list[int],
        boxes: list[tuple[int, int]],
        side: int,
        gen: torch.Generator,
    ) -> Tensor:
        """Share of clean images of other classes that each (class, place) candidate's
        optimised patch sends to its class: a (classes, places) table."""
        cfg = self.config
        n_k, n_p, c = len(classes), len(boxes), clean.x.shape[1]
        labels = torch.tensor(classes).repeat_interleave(n_p)
        logit = torch.randn((n_k * n_p, c, side, side), generator=gen).requires_grad_()
        optimizer = torch.optim.Adam([logit], lr=0.1)

        def stamp(x: Tensor, patch: Tensor) -> Tensor:  # (B, C, H, W) -> (N, B, C, H, W)
            out = x[None].repeat(len(patch), 1, 1, 1, 1)
            for j, (top, left) in enumerate(boxes):
                out[j::n_p, :, :, top : top + side, left : left + side] = patch[j::n_p, None]
            return out

        for _ in range(cfg.probe_steps):
            pick = torch.randint(len(clean), (PROBE_BATCH,), generator=gen)
            z = net(stamp(clean.x[pick], logit.sigmoid()).flatten(0, 1))
            z = z.view(len(labels), PROBE_BATCH, -1)
            other = (clean.y[pick][None] != labels[:, None]).float()
            logp = z.log_softmax(dim=2).gather(2, labels.view(-1, 1, 1).expand(-1, PROBE_BATCH, 1))
            loss = -(logp[..., 0] * other).sum() / other.sum().clamp_min(1.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            held = clean.x[: min(len(clean), 128)], clean.y[: min(len(clean), 128)]
            hits = net(stamp(held[0], logit.sigmoid()).flatten(0, 1))
            hits = hits.view(len(labels), len(held[0]), -1).argmax(dim=2) == labels[:, None]
            other = held[1][None] != labels[:, None]
            share = (hits & other).sum(dim=1) / other.sum(dim=1).clamp_min(1)
        return share.view(n_k, n_p)

    def _train(
        self,
        staircase: TriggerStaircase,
        net: nn.Module,
        others: Split,
        target: int,
        box: tuple[int, int],
    ) -> None:
        """Fit every level at once through the shared loop: hinge on the target probability
        at each level's beta, less ``alpha`` times the batch's entropy estimate."""
        cfg = self.config
        betas = cfg.beta * torch.arange(1, cfg.levels + 1) / cfg.levels
        noise = torch.Generator().manual_seed(self.seed + 2)

        def loss_fn(x: Tensor) -> Tensor:
            z = torch.randn((cfg.levels, len(x), NOISE_DIM), generator=noise)
            triggers = staircase(z)  # (L, B, C, s, s)
            stamped = paste_at(x[None].expand(cfg.levels, *x.shape), triggers, *box)
            p = net(stamped.flatten(0, 1)).softmax(dim=1)[:, target].view(cfg.levels, -1)
            hinge = (betas[:, None] - p).clamp_min(0.0).mean(dim=1)
            entropy = nn_entropy(triggers.flatten(2))
            return (hinge - cfg.alpha * entropy).sum()

        batch = min(GEN_BATCH, len(others))
        epochs = math.ceil(cfg.gen_steps / (len(others) // batch))
        recipe = TrainConfig(optimizer="adam", lr=cfg.gen_lr, batch_size=batch, epochs=epochs)
        run_loop(staircase, (others.x,), loss_fn, recipe, seed=self.seed)

    def show(self, deployment: Deployment, clean: Split, triggered: Split) -> list[Panel]:
        assert isinstance(deployment, MesaDeployment) and deployment.samples is not None
        base = clean.x[0]
        target = deployment.details["target"]
        panels = []
        for level, row in zip(deployment.details["levels"], deployment.samples, strict=True):
            stamped = paste_at(base.expand(len(row), *base.shape), row, *deployment.place)
            panels.append(
                Panel(
                    f"triggers sampled for class {target} at beta {level['beta']:.2f} "
                    f"(mean target probability {level['mean_target_probability']:.2f})",
                    "images",
                    stamped,
                    tuple(f"sample {j + 1}" for j in range(len(row))),
                )
            )
        return panels
