"""ABS: scan a network for an inner neuron that, stimulated alone, forces one label.

Liu et al., "ABS: Scanning Neural Networks for Back-doors by Artificial Brain Stimulation"
(CCS 2019). The clean images are split in halves: steps 1-2 use the first, REASR the second.

1. *Stimulation.* For ``images_per_class`` images per class, set one channel of an inner feature
   map, inside one window, to each of ``levels`` values in ``[0, max_level * a_max]``. Its
   elevation of label ``k`` on an image is the best margin ``z_k - max_{j != k} z_j`` over the
   levels; its score, the ``elevation_quantile`` of that over images of other classes. The
   ``candidates`` best (channel, label) pairs, each at its best window, go on.
2. *Reverse engineering*, in pixel space and in feature space (``reversal``: ``both`` by
   default, as the paper does; ``patch`` or ``filter`` alone). There is no label term in either.

   * *Patch.* A square patch of ``mask_budget`` of the image (the paper's 6%: 4x4 pixels on
     digits) is put at every ``patch_stride``-th position in the window's receptive field (at
     most 36 positions), its pattern optimised to raise the channel's mean in the window (less
     ``suppression`` times the other channels'): a third of the ``steps`` (at most 15) scout
     the positions by successive halving (a third of those steps at every position, the next
     third at the best third of each candidate's positions, ...), the rest go to the position
     where the neuron rose most.
   * *Filter.* A transformation of the whole image, ``x + conv(x) + b`` (every output channel
     a mix of every input channel's ``filter_size`` x ``filter_size`` neighbourhood, plus a
     tint; ``filter_size=1`` is a colour mapping per pixel), starts as the identity and is
     optimised for ``steps`` Adam steps to raise the same objective, its mean absolute change
     per pixel held within ``filter_budget`` (rescaled after each step). The paper's
     feature-space triggers are Instagram-like filters, which such a transformation
     approximates (``fsa``); it also reaches warps and blends (``wanet``, ``blend-*``).
3. *REASR.* The share of held-out images of other classes a trigger (patched, or filtered) sends
   to its candidate's label; the model is flagged when the best REASR over every trigger
   reaches ``reasr_threshold``. ``details["candidates"]`` lists every trigger with its
   ``kind`` (``patch`` or ``filter``), ``details["suspect_kind"]`` the best one's.

Deviations from the paper, for small patch-trojaned CNNs on 16-pixel ``digits``:

* Windows, not whole maps (``window=1`` is the paper's): a corner patch lights a few positions,
  and whole-map stimulation buried the BadNet's target among clean labels.
* A quantile (the median) of the elevation over images, not the minimum: one odd image ruled.
* A scanned square patch, not a free-form mask: a free mask of the same area settles on sparse
  stripes that exploit max-pooling and never redraws the patch, and with the label term of the
  authors' later scanner it redraws clean digits as a "4", "7" or "1" (REASR 0.8-0.9 on clean
  models); a neuron-driven patch stays below ~0.7 on them and near 1 on BadNets.
* No suppression by default: the patch excites most channels at its location (the backdoor is
  spread over channels), so the paper's term penalises the real trigger.
* The feature-space trigger is a residual 3x3 convolution with a mean-change budget, where the
  paper trains a small encoder-decoder bounded by SSIM: on 16-pixel digits the convolution is
  enough to reproduce the Gotham filter's effect, and its budget is one number the defender
  searches. At the default budget (0.2) the filter reversal finds the ``fsa`` BadNet on digits
  (REASR 0.99-1.0 on seeds 0-2, where the patch reversal gives 0.55 on seed 0). It has a price:
  the clean model of seed 3 sends every digit to "8" under a filter of that budget (REASR 1.0,
  0.94 at budget 0.15, with a 3x3 or a 1x1 kernel), a false alarm the patch reversal does not
  raise (``docs/defenses.md``, "ABS in feature space"). The defender's study weighs it:
  ``reversal``, ``filter_size`` and ``filter_budget`` are searched.

ABS is detection only: a flagged model is not deployed; an unflagged one serves unchanged (its
copy, frozen for the scan). It assumes one neuron carries the backdoor, which is what Veldanda &
Garg's TCA attack breaks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from arena.core.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, SHARE, UNIT, Valid, param
from arena.core.infer import predict
from arena.data.splits import Split
from arena.models.base import ArenaNet
from strategies.defenses.base import Defense, DefenseConfig, Deployment, Panel
from strategies.registry import register_defense

Window = tuple[int, int, int, int]  # rows r0:r1, columns c0:c1 of a feature map
STIM_BATCH = 4096  # stimulated feature maps per forward pass of the back of the network
# Bounds on the reversal's scouting pass, which is most of ABS's cost: at most this many patch
# positions per candidate (the stride widens past ``patch_stride`` when a window's receptive
# field holds more) and this many steps. The defaults stay inside both; without them the
# corners of the search ranges cost 10-30x the default, and a duel's defender study samples
# those corners.
MAX_POSITIONS = 36
MAX_SCOUT_STEPS = 15
# The scout's successive halving: its steps in this many rounds, each keeping the best
# 1/SCOUT_KEEP of every candidate's positions for the next (``bench/README.md``, "ABS's scout")
SCOUT_ROUNDS = 3
SCOUT_KEEP = 3
REVERSALS = ("both", "patch", "filter")
FILTER_LR = 0.01  # Adam's step on a filter's weights: its residual moves a few hundredths a step


def _residual(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Each of K filters' change to images ``x`` (B, C, H, W), before clipping: (B, K, C, H, W);
    ``weight`` (K, C, C, s, s) with an odd kernel side ``s``, ``bias`` (K, C)."""
    k, c = bias.shape
    s = weight.shape[-1]
    out = F.conv2d(
        x.repeat(1, k, 1, 1), weight.reshape(k * c, c, s, s), bias.reshape(k * c),
        padding=s // 2, groups=k,
    )  # fmt: skip
    return out.unflatten(1, (k, c))


def apply_filters(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Images ``x`` (B, C, H, W) through each of K filters: ``x + conv(x) + bias``, clipped to
    [0, 1] (see :func:`_residual`). Returns (K, B, C, H, W)."""
    return (x[None] + _residual(x, weight, bias).transpose(0, 1)).clamp(0.0, 1.0)


def paste(mask: Tensor, pattern: Tensor, x: Tensor) -> Tensor:
    """Images ``x`` with a reversed patch trigger."""
    return (1 - mask) * x + mask * pattern


def filtered(weight: Tensor, bias: Tensor, x: Tensor) -> Tensor:
    """Images ``x`` through one reversed filter (``weight`` (1, C, C, s, s), ``bias`` (1, C))."""
    return apply_filters(x, weight, bias)[0]


def filter_change(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Mean absolute change per pixel each filter makes to ``x``, before clipping (K,)."""
    return _residual(x, weight, bias).abs().mean(dim=(0, 2, 3, 4))


@dataclass(frozen=True)
class ABSConfig(DefenseConfig):
    layer: int = param(-1, choices=(-1, -2), help="feature stage scanned, counted from the last")
    images_per_class: int = param(
        3, low=1, high=5, valid=AT_LEAST_ONE, help="clean images used to stimulate"
    )
    levels: int = param(8, low=4, high=12, valid=Valid(2), help="stimulation values per neuron")
    max_level: float = param(
        4.0, low=1.0, high=16.0, log=True, valid=POSITIVE, help="top value / a_max"
    )
    window: float = param(
        0.5, low=0.25, high=1.0, valid=SHARE, help="stimulated window side / map side"
    )
    elevation_quantile: float = param(
        0.5, low=0.0, high=0.9, valid=UNIT, help="0: the paper's minimum"
    )
    candidates: int = param(
        8, low=2, high=12, valid=AT_LEAST_ONE, help="neurons whose trigger is reverse-engineered"
    )
    mask_budget: float = param(
        0.06, low=0.02, high=0.2, valid=SHARE, help="trigger patch area / image area"
    )
    patch_stride: int = param(
        2, low=1, high=4, valid=AT_LEAST_ONE, help="pixels between tried patch positions"
    )
    images: int = param(
        10, low=4, high=16, valid=AT_LEAST_ONE, help="clean images the trigger is optimised on"
    )
    steps: int = param(
        45, low=15, high=120, valid=AT_LEAST_ONE, help="optimisation steps per reversal"
    )
    suppression: float = param(
        0.0, low=0.0, high=2.0, valid=NON_NEGATIVE, help="weight of the other channels"
    )
    reasr_threshold: float = param(
        0.85, low=0.5, high=1.0, valid=UNIT, help="flag at this REASR or above"
    )
    reversal: str = param(
        "both",
        choices=REVERSALS,
        help="triggers reversed per candidate: a pixel patch, a whole-image filter, or both",
    )
    filter_size: int = param(
        3,
        choices=(1, 3),
        help="a reversed filter's kernel: 1, a colour mapping per pixel; 3, with its neighbours",
    )
    filter_budget: float = param(
        0.2,
        low=0.05,
        high=0.3,
        valid=SHARE,
        help="mean absolute change per pixel a reversed filter may make",
    )


def windows(height: int, width: int, share: float) -> list[Window]:
    """Windows of ``share`` of each side, overlapping by half, covering the map."""

    def starts(n: int) -> tuple[int, list[int]]:
        side = max(1, min(n, round(n * share)))
        out = list(range(0, n - side + 1, max(1, side // 2)))
        return side, out if out[-1] == n - side else [*out, n - side]

    hs, rows = starts(height)
    ws, cols = starts(width)
    return [(r, r + hs, c, c + ws) for r in rows for c in cols]


def stimulation_scores(
    back: nn.Module, h: Tensor, y: Tensor, levels: Tensor, wins: list[Window], k: int, q: float
) -> Tensor:
    """Scores (C, windows, K) of every channel in every window for every label (step 1), from
    feature maps ``h`` (B, C, H, W) of images with labels ``y``."""
    b, c = h.shape[:2]
    v = len(levels)
    own = F.one_hot(y, k).bool()  # images of class k do not count for k
    scores = torch.full((c, len(wins), k), float("-inf"))
    chunk = max(1, STIM_BATCH // (v * b))
    for w, (r0, r1, c0, c1) in enumerate(wins):
        for start in range(0, c, chunk):
            chans = torch.arange(start, min(c, start + chunk))
            n = len(chans)
            stim = h.expand(n, v, *h.shape).clone()  # (n, V, B, C, H, W)
            stim[torch.arange(n), :, :, chans, r0:r1, c0:c1] = levels.view(1, v, 1, 1, 1)
            z = back(stim.flatten(0, 2)).view(n, v, b, k)
            top2 = z.topk(2, dim=3).values
            best_other = torch.where(z == top2[..., :1], top2[..., 1:2], top2[..., :1])
            elevation = (z - best_other).amax(dim=1).masked_fill(own, float("nan"))
            score = elevation.nanquantile(q, dim=1)  # (n, K)
            scores[chans, w] = score.nan_to_num(float("-inf"))
    return scores


def receptive_box(front: nn.Module, x: Tensor, win: Window) -> Window:
    """Bounding box (in pixels) of the inputs that reach window ``win`` of ``front``'s output."""
    r0, r1, c0, c1 = win
    probe = x.clone().requires_grad_(True)
    front(probe)[:, :, r0:r1, c0:c1].sum().backward()
    assert probe.grad is not None
    hit = probe.grad.abs().sum(dim=(0, 1)) > 0
    if not hit.any():
        return 0, x.shape[2], 0, x.shape[3]
    rows, cols = hit.any(dim=1).nonzero().flatten(), hit.any(dim=0).nonzero().flatten()
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def positions(lo: int, hi: int, side: int, size: int, stride: int) -> list[int]:
    """Starts of a ``side``-pixel patch inside ``[lo, hi)`` of an axis of ``size`` pixels, every
    ``stride`` pixels, the last flush with ``hi``."""
    last = max(0, min(hi, size) - side)
    out = list(range(min(lo, last), last + 1, stride))
    return out if out[-1] == last else [*out, last]


def patch_grid(
    box: Window, side: int, size: tuple[int, int], stride: int
) -> tuple[list[int], list[int]]:
    """Row and column starts of the patches tried inside pixel ``box``: every ``stride``-th
    position, the stride widened until at most :data:`MAX_POSITIONS` patches remain."""
    while True:
        rows = positions(box[0], box[1], side, size[0], stride)
        cols = positions(box[2], box[3], side, size[1], stride)
        if len(rows) * len(cols) <= MAX_POSITIONS or stride >= max(size):
            return rows, cols
        stride += 1


def _split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal counts, the larger first."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _top(score: Tensor, idx: Tensor, keep: int) -> Tensor:
    """The entries of ``idx`` with the highest ``score``: one if ``keep`` is 1, else a
    ``1/keep`` share of them (at least one), best first (ties: the earlier position)."""
    n = 1 if keep == 1 else max(1, math.ceil(len(idx) / keep))
    return idx[score[idx].argsort(descending=True, stable=True)[:n]]


@dataclass
class ABSDeployment(Deployment):
    # (triggers, C, H, W): each reversed patch (mask x pattern) or filtered clean image, in
    # the order of details["candidates"]
    triggers: Tensor | None = None


@register_defense
class ABS(Defense[ABSConfig]):
    name = "abs"
    version = 3  # 3: the scout's successive halving
    summary = "stimulate inner neurons, reverse-engineer patch triggers, flag by REASR; Liu et al."
    kind = "detector"
    access = "white-box"
    config_cls = ABSConfig

    def fit_copy(self, model: ArenaNet, clean: Split) -> Deployment:
        cfg = self.config
        net = model.eval().requires_grad_(False)  # no gradient reaches the weights in the scan
        generator = self.generator()
        stage = net.feature_stages[cfg.layer]
        front, back = net.split(stage)
        k_all = net.num_classes

        order = torch.randperm(len(clean.y), generator=generator)
        half = max(1, len(order) // 2)
        scan, held = order[:half], order[half:] if len(order) > 1 else order
        xs, ys = clean.x[scan], clean.y[scan]
        pick = torch.cat(
            [(ys == k).nonzero().flatten()[: cfg.images_per_class] for k in range(k_all)]
        )
        with torch.no_grad():
            h = front(xs[pick])
            wins = windows(h.shape[2], h.shape[3], cfg.window)
            levels = torch.linspace(0.0, cfg.max_level * float(h.max()), cfg.levels)
            table = stimulation_scores(
                back, h, ys[pick], levels, wins, k_all, cfg.elevation_quantile
            )
        best, where = table.max(dim=1)  # (C, K): each pair at its best window
        top = best.flatten().argsort(descending=True)[: cfg.candidates]
        neurons, labels = top // k_all, top % k_all
        cand_wins = [wins[int(where[n, k])] for n, k in zip(neurons, labels, strict=True)]

        x_held, y_held = clean.x[held], clean.y[held]
        kinds: list[str] = []
        stamps: list[Callable[[Tensor], Tensor]] = []  # each trigger: images -> triggered
        shown: list[Tensor] = []
        if cfg.reversal in ("both", "patch"):
            masks, patterns = self._reverse(front, xs[: cfg.images], neurons, cand_wins, generator)
            kinds += ["patch"] * len(top)
            stamps += [functools.partial(paste, masks[i], patterns[i]) for i in range(len(top))]
            shown.append(masks * patterns)
        if cfg.reversal in ("both", "filter"):
            weight, bias = self._reverse_filters(front, xs[: cfg.images], neurons, cand_wins)
            kinds += ["filter"] * len(top)
            stamps += [
                functools.partial(filtered, weight[i : i + 1], bias[i : i + 1])
                for i in range(len(top))
            ]
            shown.append(apply_filters(xs[:1], weight, bias)[:, 0])
        count = len(kinds)
        cand = [i % len(top) for i in range(count)]  # the candidate neuron of each trigger
        reasr = torch.zeros(count)
        for t in range(count):
            label = labels[cand[t]]
            others = y_held != label
            if others.any():
                reasr[t] = (predict(net, stamps[t](x_held[others])) == label).float().mean()
        pick_best = int(reasr.argmax())
        flagged = bool(reasr[pick_best] >= cfg.reasr_threshold)
        best_cand = cand[pick_best]
        details = {
            "layer": stage,
            "max_reasr": float(reasr[pick_best]),
            "suspect_label": int(labels[best_cand]),
            "suspect_neuron": int(neurons[best_cand]),
            "suspect_window": list(cand_wins[best_cand]),
            "suspect_kind": kinds[pick_best],
            "candidates": [
                {
                    "kind": kinds[t],
                    "neuron": int(neurons[cand[t]]),
                    "label": int(labels[cand[t]]),
                    "window": list(cand_wins[cand[t]]),
                    "score": float(best[neurons[cand[t]], labels[cand[t]]]),
                    "reasr": float(reasr[t]),
                }
                for t in range(count)
            ],
        }
        return ABSDeployment(
            net,
            flagged,
            details,
            named=[int(labels[best_cand])],
            triggers=torch.cat(shown),
        )

    def show(self, deployment: Deployment, clean: Split, triggered: Split) -> list[Panel]:
        """The reversed triggers of the candidates, best REASR first: each patch, and each
        filter as it changes the first clean image."""
        assert isinstance(deployment, ABSDeployment) and deployment.triggers is not None
        found = deployment.details["candidates"]
        order = sorted(range(len(found)), key=lambda i: -found[i]["reasr"])
        labels = tuple(
            f"{found[i].get('kind', 'patch')} n{found[i]['neuron']} -> {found[i]['label']}, "
            f"REASR {found[i]['reasr']:.2f}"
            for i in order
        )
        verdict = "flagged" if deployment.flagged else "not flagged"
        return [
            Panel(
                f"reversed triggers of the candidate neurons, best first ({verdict})",
                "images",
                deployment.triggers[order],
                labels,
            )
        ]

    def _reverse_filters(
        self, front: nn.Module, x: Tensor, neurons: Tensor, wins: list[Window]
    ) -> tuple[Tensor, Tensor]:
        """Weights (K, C, C, 3, 3) and biases (K, C), one filter trigger per candidate (step 2,
        feature space): a 3x3 convolution added to the image, the transformation of the whole
        image that raises the candidate's channel in its window most (less the others', if
        suppressed), its mean absolute change per pixel held within ``filter_budget`` by
        rescaling after every step. Starts from the identity (no change)."""
        cfg = self.config
        k, (c, _, _) = len(neurons), x.shape[1:]
        fh, fw = front(x[:1]).shape[2:]
        inside = torch.zeros(k, 1, fh, fw)
        for i, (r0, r1, c0, c1) in enumerate(wins):
            inside[i, :, r0:r1, c0:c1] = 1.0 / ((r1 - r0) * (c1 - c0))
        size = cfg.filter_size
        weight = torch.zeros(k, c, c, size, size, requires_grad=True)
        bias = torch.zeros(k, c, requires_grad=True)
        optimizer = torch.optim.Adam([weight, bias], lr=FILTER_LR)
        channel = neurons.view(-1, 1, 1).expand(k, len(x), 1)
        for _ in range(cfg.steps):
            h = front(apply_filters(x, weight, bias).flatten(0, 1)).unflatten(0, (k, len(x)))
            per_channel = (h * inside[:, None]).sum(dim=(3, 4))  # (K, B, C): window means
            target = per_channel.gather(2, channel)[..., 0]
            rest = (per_channel.sum(dim=2) - target) / max(1, h.shape[2] - 1)
            loss = -(target - cfg.suppression * rest).mean(dim=1).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # back inside the budget: the residual is linear in both
                over = (filter_change(x, weight, bias) / cfg.filter_budget).clamp(min=1.0)
                weight /= over.view(-1, 1, 1, 1, 1)
                bias /= over.view(-1, 1)
        return weight.detach(), bias.detach()

    def _reverse(
        self, front: nn.Module, x: Tensor, neurons: Tensor, wins: list[Window], gen: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Masks (K, 1, H, W) and patterns (K, C, H, W), one patch trigger per candidate
        (step 2): a short ascent at every position, then the rest at each candidate's best."""
        cfg = self.config
        hgt, wid = x.shape[2:]
        side = max(1, min(hgt, wid, round(math.sqrt(cfg.mask_budget * hgt * wid))))
        fh, fw = front(x[:1]).shape[2:]
        boxes, owner, inside = [], [], torch.zeros(len(neurons), 1, fh, fw)
        for i, (r0, r1, c0, c1) in enumerate(wins):
            b0, b1, b2, b3 = receptive_box(front, x, (r0, r1, c0, c1))
            inside[i, :, r0:r1, c0:c1] = 1.0 / ((r1 - r0) * (c1 - c0))
            rows, cols = patch_grid((b0, b1, b2, b3), side, (hgt, wid), cfg.patch_stride)
            for r in rows:
                for col in cols:
                    boxes.append(torch.zeros(1, hgt, wid))
                    boxes[-1][:, r : r + side, col : col + side] = 1.0
                    owner.append(i)
        m, owners = torch.stack(boxes), torch.tensor(owner)
        ch, win = neurons[owners], inside[owners]

        def ascend(
            keep: Tensor, start: Tensor, steps: int, state: dict[str, Tensor] | None = None
        ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
            """Adam on the pattern logits of trials ``keep``, from ``state`` (Adam's moments of
            those trials, carried from an earlier call) or afresh; the logits, final objective
            (the trial's channel's window mean, less the others' if suppressed, over ``x``) and
            Adam's state. Trials never interact (the network is in eval mode, Adam works per
            element), so a trial's path does not depend on which others share its batch."""
            n, b = len(keep), len(x)
            mk, ck, wk = m[keep], ch[keep].view(-1, 1, 1).expand(n, b, 1), win[keep, None]
            logit = start.clone().requires_grad_()
            optimizer = torch.optim.Adam([logit], lr=0.1)
            if state is not None:
                optimizer.state[logit] = {k: v.clone() for k, v in state.items()}

            def objective() -> Tensor:
                stamped = (1 - mk[:, None]) * x[None] + (mk * logit.sigmoid())[:, None]
                h = front(stamped.flatten(0, 1)).unflatten(0, (n, b))
                per_channel = (h * wk).sum(dim=(3, 4))  # (N, B, C): window means
                target = per_channel.gather(2, ck)[..., 0]
                rest = (per_channel.sum(dim=2) - target) / max(1, h.shape[2] - 1)
                return (target - cfg.suppression * rest).mean(dim=1)

            for _ in range(steps):
                loss = -objective().sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                return logit.detach(), objective(), dict(optimizer.state[logit])

        # the scout, by successive halving: every position for a third of its steps, then the
        # best third of each candidate's positions (at least one) for the next third, ...
        scout = max(1, min(cfg.steps // 3, MAX_SCOUT_STEPS))
        alive = torch.arange(len(m))
        logit = 0.5 * torch.randn((len(m), *x.shape[1:]), generator=gen)
        state: dict[str, Tensor] | None = None
        rounds = [n for n in _split(scout, SCOUT_ROUNDS) if n]
        for r, steps in enumerate(rounds):
            logit, score, state = ascend(alive, logit, steps, state)
            last = r == len(rounds) - 1
            keep = torch.cat([
                _top(score, (owners[alive] == i).nonzero().flatten(), 1 if last else SCOUT_KEEP)
                for i in range(len(neurons))
            ])  # fmt: skip
            alive, logit = alive[keep], logit[keep]
            state = {k: v if v.dim() == 0 else v[keep] for k, v in state.items()}
        logit, _, _ = ascend(alive, logit, cfg.steps - scout)  # one per candidate, in order
        return m[alive], logit.sigmoid()
