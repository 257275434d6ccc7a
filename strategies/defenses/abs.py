"""ABS: scan a network for an inner neuron that, stimulated alone, forces one label.

Liu et al., "ABS: Scanning Neural Networks for Back-doors by Artificial Brain Stimulation"
(CCS 2019). Three steps, each here a batched tensor computation:

1. *Stimulation.* For a few clean images per class, set one channel of an inner feature map to
   each of ``levels`` values in ``[0, max_level * a_max]`` (``a_max``: the layer's largest
   activation on those images) and read the logits. A channel's elevation of label ``k`` on an
   image is the best margin ``z_k - max_{j != k} z_j`` over the levels; its score for ``k`` is
   the smallest elevation over images of other classes, so it is high only if the channel alone
   pushes *every* image to ``k``.
2. *Reverse engineering.* For the ``candidates`` best (channel, label) pairs, optimise a mask
   and a pattern ``x' = (1 - m) x + m p`` that maximise that channel's activation, suppress the
   rest of the layer and (weighted by ``logit_weight``, as the authors' later scanner does) raise
   the pair's label, with the mask's area held under ``mask_budget`` of the image. The paper
   uses 6%; the default here is 4%, because on 16-pixel digits 6% is 15 pixels of ink, enough to
   redraw a clean digit as a "4" for most images (REASR near 0.9 on clean models).
3. *REASR.* The share of clean images of other classes that the reversed trigger sends to the
   candidate's label. The model is flagged when the best REASR reaches ``reasr_threshold``.

ABS is detection only: a flagged model is not deployed; an unflagged one serves unchanged. It
assumes one neuron carries the backdoor, which is what Veldanda & Garg's TCA attack breaks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from arena.data.splits import Split
from arena.infer import predict
from arena.models.base import ArenaNet
from arena.params import param
from strategies.defenses.base import Defense, DefenseConfig, Deployment
from strategies.registry import register_defense

MASK_INIT = -4.5  # sigmoid ~1%: the mask starts nearly empty and grows where it pays


@dataclass(frozen=True)
class ABSConfig(DefenseConfig):
    layer: int = param(-1, choices=(-1, -2), help="feature stage scanned, counted from the last")
    images_per_class: int = param(3, low=1, high=8, help="clean images used to stimulate")
    levels: int = param(8, low=4, high=16, help="stimulation values per neuron")
    max_level: float = param(4.0, low=1.0, high=16.0, log=True, help="top value / a_max")
    candidates: int = param(12, low=2, high=24, help="neurons whose trigger is reverse-engineered")
    mask_budget: float = param(0.04, low=0.02, high=0.2, help="largest trigger area / image area")
    steps: int = param(200, low=40, high=400, help="optimisation steps per reversal")
    logit_weight: float = param(3.0, low=0.0, high=6.0, help="weight of the label term")
    reasr_threshold: float = param(0.87, low=0.5, high=1.0, help="flag at this REASR or above")


def stimulation_scores(
    back: torch.nn.Module, h: torch.Tensor, y: torch.Tensor, levels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Scores (C, K) of every channel for every label (step 1), from feature maps ``h``
    (B, C, H, W) of images with labels ``y``."""
    b, c = h.shape[:2]
    v = len(levels)
    scores = torch.empty(c, num_classes)
    for ch in range(c):
        stim = h.unsqueeze(0).repeat(v, 1, 1, 1, 1)  # (V, B, C, H, W)
        stim[:, :, ch] = levels.view(v, 1, 1, 1)
        z = back(stim.flatten(0, 1)).view(v, b, num_classes)
        top2 = z.topk(2, dim=2).values
        best_other = torch.where(
            z == top2[..., :1], top2[..., 1:2], top2[..., :1]
        )  # max over j != k of z_j, per k
        elevation = (z - best_other).amax(dim=0)  # (B, K): best margin over levels
        own = torch.nn.functional.one_hot(y, num_classes).bool()
        elevation = elevation.masked_fill(own, float("inf"))  # images of class k do not count
        scores[ch] = elevation.amin(dim=0)
    return scores


@register_defense
class ABS(Defense):
    name = "abs"
    summary = "stimulate single inner neurons, reverse-engineer triggers, flag by REASR; Liu et al."
    kind = "detector"
    access = "white-box"
    config_cls = ABSConfig

    def fit(self, model: ArenaNet, clean: Split) -> Deployment:
        cfg: ABSConfig = self.config  # type: ignore[assignment]
        net = copy.deepcopy(model).eval().requires_grad_(False)
        generator = self.generator()
        stage = net.feature_stages[cfg.layer]
        front, back = net.split(stage)

        pick = torch.cat(
            [
                (clean.y == k).nonzero().flatten()[: cfg.images_per_class]
                for k in range(net.num_classes)
            ]
        )
        x, y = clean.x[pick], clean.y[pick]
        with torch.no_grad():
            h = front(x)
            levels = torch.linspace(0.0, cfg.max_level * float(h.max()), cfg.levels)
            table = stimulation_scores(back, h, y, levels, net.num_classes)
        top = table.flatten().argsort(descending=True)[: cfg.candidates]
        neurons, labels = top // net.num_classes, top % net.num_classes

        masks, patterns = self._reverse(front, back, x, neurons, labels, h.amax(), cfg, generator)
        reasr = torch.empty(len(top))
        for i, (label, m, p) in enumerate(zip(labels, masks, patterns, strict=True)):
            others = clean.y != label
            stamped = (1 - m) * clean.x[others] + m * p
            reasr[i] = (predict(net, stamped) == label).float().mean()
        best = int(reasr.argmax())
        flagged = bool(reasr[best] >= cfg.reasr_threshold)
        details = {
            "layer": stage,
            "max_reasr": float(reasr[best]),
            "suspect_label": int(labels[best]),
            "suspect_neuron": int(neurons[best]),
            "candidates": [
                {"neuron": int(n), "label": int(k), "score": float(table[n, k]), "reasr": float(r)}
                for n, k, r in zip(neurons, labels, reasr, strict=True)
            ],
        }
        return Deployment(model, flagged=flagged, details=details)

    def _reverse(
        self,
        front: torch.nn.Module,
        back: torch.nn.Module,
        x: torch.Tensor,
        neurons: torch.Tensor,
        labels: torch.Tensor,
        a_max: torch.Tensor,
        cfg: ABSConfig,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks (K, 1, H, W) and patterns (K, C, H, W) for each candidate neuron (step 2)."""
        k = len(neurons)
        _, c, hgt, wid = x.shape
        budget = cfg.mask_budget * hgt * wid
        mask_logit = (
            torch.full((k, 1, hgt, wid), MASK_INIT)
            .add_(0.1 * torch.randn((k, 1, hgt, wid), generator=generator))
            .requires_grad_(True)
        )
        pattern_logit = (0.5 * torch.randn((k, c, hgt, wid), generator=generator)).requires_grad_(
            True
        )
        optimizer = torch.optim.Adam([mask_logit, pattern_logit], lr=0.1)
        rows = torch.arange(k)
        for _ in range(cfg.steps):
            m, p = mask_logit.sigmoid(), pattern_logit.sigmoid()
            stamped = (1 - m[:, None]) * x[None] + (m * p)[:, None]  # (K, B, C, H, W)
            h = front(stamped.flatten(0, 1))
            feats = h.unflatten(0, (k, len(x))).mean(dim=(3, 4))
            target = feats[rows, :, neurons]  # (K, B)
            rest = (feats.sum(dim=2) - target) / max(1, feats.shape[2] - 1)
            label_loss = F.cross_entropy(
                back(h), labels.repeat_interleave(len(x)), reduction="none"
            ).view(k, -1)
            area = m.sum(dim=(1, 2, 3))
            loss = (
                (-target.mean(dim=1) + 0.5 * rest.mean(dim=1)) / a_max
                + cfg.logit_weight * label_loss.mean(dim=1)
                + 10.0 * torch.relu(area - budget) / budget
                + 0.01 * area / budget
            ).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            m, p = mask_logit.sigmoid(), pattern_logit.sigmoid()
            n = max(1, int(budget))
            kth = m.flatten(1).topk(n, dim=1).values[:, -1].view(k, 1, 1, 1)
            m = torch.where(m >= kth, m, torch.zeros_like(m))  # hold the area to the budget
        return m, p
