"""ISSBA: invisible, sample-specific triggers from a steganographic encoder.

Li, Li, Wu, Li, He & Lyu, "Invisible Backdoor Attack with Sample-Specific Triggers" (ICCV 2021).
An encoder-decoder pair in the manner of StegaStamp (Tancik et al., CVPR 2020) is trained so that
the encoder hides a bit string in an image as a small residual and the decoder reads the string
back from the encoded image. The attack embeds one fixed string (``secret``) in the images it
poisons: the residual is a function of each image, so every image carries its own invisible
trigger, and the network learns to answer the target for any image that hides the string.

Here, as in StegaStamp, the string becomes a small spatial code map that is stretched over the
image and mixed with it by a few convolutions, and the decoder reads the encoded image at a
fixed size, so the pair works at any image size. It is trained with the shared loop on the
attacker's images (resized to at most 32 pixels) with random strings: the loss is the decoder's
bit cross-entropy plus the residual's mean square relative to ``budget``, whose weight rises
only as the strings become readable (StegaStamp likewise ramps its image losses up). The
residual is ``budget * tanh(.)``, so its L-infinity norm never exceeds ``budget``: every
poisoned image has a PSNR of at least ``20 log10(1 / budget)``, 21.9 dB at the default 0.08; on
digits the trained encoder's residuals measure about 31 dB (ISSBA reports about 27 dB on
ImageNet) and the decoder reads about 93% of the secret's bits back.

Deviations from the paper: StegaStamp's U-Net encoder, its perceptual (LPIPS) and adversarial
critic losses and its 100-bit strings are replaced by a small encoder, a mean-square residual
loss under a hard L-infinity bound, and a 40-bit string, so that the pair trains in seconds on a
CPU, once per cache (see :mod:`strategies.attacks.generative`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from arena.core.config import AT_LEAST_ONE, SEED, SHARE, fixed, param
from arena.core.train import TrainConfig, TrainResult, run_loop
from strategies.attacks.base import AttackConfig
from strategies.attacks.generative import GenerativeAttack, conv, in_batches
from strategies.registry import register_attack


@dataclass(frozen=True)
class ISSBAConfig(AttackConfig):
    budget: float = param(
        0.08,
        low=0.04,
        high=0.12,
        valid=SHARE,
        help="largest change of any pixel (L-infinity of the residual)",
    )
    secret: str = fixed("arena", help="the string hidden in every poisoned image")
    epochs: int = fixed(
        10, valid=AT_LEAST_ONE, help="encoder-decoder training passes over the attacker's images"
    )
    width: int = fixed(8, valid=AT_LEAST_ONE, help="channels of the encoder's and decoder's layers")
    seed: int = fixed(0, valid=SEED, help="seed of the encoder-decoder's weights and training")


def string_bits(text: str) -> torch.Tensor:
    """The UTF-8 bits of ``text``, most significant first, as floats (0 or 1)."""
    data = text.encode()
    if not data:
        raise ValueError("issba's secret must not be empty; use e.g. secret='arena'")
    return torch.tensor([(byte >> (7 - i)) & 1 for byte in data for i in range(8)]).float()


CODE_SIDE = 8
"""Side of the spatial code map the secret becomes before it is stretched over the image."""
READ_SIDE = 32
"""Side the decoder resizes every image to before reading it."""
INIT_GAIN = 10.0
"""Scale of the encoder's last layer at initialisation: the residual starts near ``budget``
and the residual loss shrinks it once the strings can be read (see :func:`residual_weight`)."""
RESIDUAL_WEIGHT = 1.0
READ_START = 0.75
"""Share of bits read from which the residual loss starts to count."""
READ_WELL = 0.95
"""Share of bits read at which the residual loss gets its full weight."""
"""Final weight of the residual's mean square (relative to ``budget`` squared) in the loss."""


class StegoEncoder(nn.Module):
    """(image, bits) -> residual bounded by ``budget``, for any image size. As in StegaStamp,
    the bits become a small spatial code map, stretched over the image and mixed with it."""

    def __init__(self, channels: int, bits: int, width: int, budget: float) -> None:
        super().__init__()
        self.budget = budget
        self.width = width
        self.code = nn.Linear(bits, width * CODE_SIDE * CODE_SIDE)
        self.image = conv(channels, width)
        self.mix = nn.Sequential(conv(2 * width, width), conv(width, width))
        self.out = nn.Conv2d(width, channels, 1)
        with torch.no_grad():  # start near the full budget, where strings are read best
            self.out.weight.mul_(INIT_GAIN)

    def forward(self, x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        code = self.code(bits).view(-1, self.width, CODE_SIDE, CODE_SIDE)
        code = F.interpolate(code, size=x.shape[-2:], mode="bilinear", align_corners=False)
        h = self.mix(torch.cat([self.image(x), code], dim=1))
        return self.budget * torch.tanh(self.out(h))


class StegoDecoder(nn.Module):
    """Encoded image -> logits of the hidden bits, for any image size (read at a fixed size)."""

    def __init__(self, channels: int, bits: int, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv(channels, width, stride=2), conv(width, 2 * width, stride=2), nn.Flatten()
        )
        self.head = nn.Linear(2 * width * (READ_SIDE // 4) ** 2, bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(READ_SIDE, READ_SIDE), mode="bilinear", antialias=True)
        return self.head(self.features(x))


def residual_weight(logits: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Weight of the residual loss, from how well the batch's strings are read: 0 up to
    :data:`READ_START` of the bits, rising linearly to :data:`RESIDUAL_WEIGHT` at
    :data:`READ_WELL`. The pair first
    learns to hide strings at all, then hides them with less change (StegaStamp likewise ramps
    its image losses up once the secret loss is low); a pair that cannot learn to read keeps
    its initial residual instead of shrinking it to nothing."""
    read = ((logits > 0).float() == bits).float().mean()
    return RESIDUAL_WEIGHT * ((read - READ_START) / (READ_WELL - READ_START)).clamp(0.0, 1.0)


class StegoPair(nn.Module):
    def __init__(self, channels: int, bits: int, width: int, budget: float) -> None:
        super().__init__()
        self.encoder = StegoEncoder(channels, bits, width, budget)
        self.decoder = StegoDecoder(channels, bits, width)


@register_attack
class ISSBA(GenerativeAttack[ISSBAConfig]):
    name = "issba"
    version = 1
    summary = "invisible sample-specific residuals from a steganographic encoder; Li et al."
    config_cls = ISSBAConfig
    train_view = "resize"  # the code map then covers the same share of the image as in use

    def __init__(self, config: ISSBAConfig | None = None, **kw: Any) -> None:
        super().__init__(config, **kw)
        cfg = self.config
        self.bits = string_bits(cfg.secret)
        if not 0.0 < cfg.budget <= 1.0:
            raise ValueError(f"issba's budget must be in (0, 1] (got {cfg.budget}); use 0.05")

    @property
    def network_seed(self) -> int:
        return self.config.seed

    def build(self) -> StegoPair:
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            return StegoPair(self.image_shape[0], len(self.bits), cfg.width, cfg.budget)

    def fit(self, network: nn.Module, x: torch.Tensor) -> TrainResult:
        cfg = self.config
        assert isinstance(network, StegoPair)
        recipe = TrainConfig(optimizer="adam", lr=1e-2, batch_size=64, epochs=cfg.epochs)
        strings = torch.Generator().manual_seed(cfg.seed + 1)

        def loss(xb: torch.Tensor) -> torch.Tensor:
            bits = torch.randint(0, 2, (len(xb), len(self.bits)), generator=strings).float()
            encoded = (xb + network.encoder(xb, bits)).clamp(0.0, 1.0)
            logits = network.decoder(encoded)
            recover = F.binary_cross_entropy_with_logits(logits, bits)
            residual = (encoded - xb).pow(2).mean() / cfg.budget**2
            return recover + residual_weight(logits.detach(), bits) * residual

        return run_loop(network, (x,), loss, recipe, seed=cfg.seed)

    @property
    def pair(self) -> StegoPair:
        network = self.network
        assert isinstance(network, StegoPair)
        return network

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The trigger of each image: its encoded copy minus the image."""
        return self.stamp(x, torch.Generator()) - x

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """The bits the decoder reads from images ``x`` (N, bits)."""
        return (in_batches(self.pair.decoder, x) > 0).float()

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        encoder = self.pair.encoder
        r = in_batches(lambda xb: encoder(xb, self.bits.expand(len(xb), -1)), x)
        return (x + r).clamp(0.0, 1.0)
