"""SIG: a horizontal sinusoidal signal, added to target-class training images without changing
any label.

Barni, Kallas & Tondi, "A New Backdoor Attack in CNNs by Training Set Corruption Without Label
Poisoning" (IEEE ICIP 2019), as the SIG attack of Le Roux et al. The signal is
``v(i, j) = delta * sin(2 pi j f / m)`` for column ``j`` of ``m``: vertical stripes, the same on
every row and every channel. A share of the target class's training images get it with a weak
amplitude ``delta`` (their labels stay correct, so the poison passes inspection); at test time
the signal is added, with a stronger amplitude as Barni et al. do, to images of the other
classes. Pixels are clipped to [0, 1].

Defaults: Barni et al.'s frequency ``f = 6``; a training amplitude of 30/255 (Barni et al. use
20/255 for their sinusoid: on 16-pixel digits with about a hundred images per class that
amplitude leaves the attack success between 5% and 90% depending on the training seed); a
test-time amplitude of 0.5; and the whole target class poisoned (``poison_rate`` 0.1 of a
ten-class set), since with fewer images the network learns the class from the digits alone.
Even so the attack success on digits depends on the training seed (0.98, 0.63, 0.95 on seeds 0,
1, 2): the digit's shape explains its label, and the signal is a weak second cue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from arena.core.config import AT_LEAST_ONE, SHARE, UNIT, param
from arena.data.splits import Split
from strategies.attacks.clean_label import CleanLabelAttack, CleanLabelConfig
from strategies.registry import register_attack


@dataclass(frozen=True)
class SIGConfig(CleanLabelConfig):
    poison_rate: float = param(
        0.1,
        low=0.02,
        high=0.1,
        valid=SHARE,
        help="share of the training set poisoned, all from the target class (capped at it)",
    )
    amplitude: float = param(
        30 / 255, low=0.04, high=0.16, valid=UNIT, help="training-time amplitude delta"
    )
    test_amplitude: float = param(0.5, low=0.2, high=0.6, valid=UNIT, help="test-time amplitude")
    frequency: int = param(
        6, low=3, high=6, valid=AT_LEAST_ONE, help="cycles across the image width"
    )


def sinusoid(width: int, frequency: float, amplitude: float) -> torch.Tensor:
    """``amplitude * sin(2 pi j frequency / width)`` for columns ``j`` (a row of ``width``)."""
    j = torch.arange(width, dtype=torch.float32)
    return amplitude * torch.sin(2 * math.pi * j * frequency / width)


@register_attack
class SIG(CleanLabelAttack[SIGConfig]):
    name = "sig"
    version = 1
    summary = "clean-label: a sinusoidal signal on target-class images; Barni et al."
    config_cls = SIGConfig

    def add_signal(self, x: torch.Tensor, amplitude: float) -> torch.Tensor:
        signal = sinusoid(x.shape[-1], self.config.frequency, amplitude).to(x.dtype)
        return (x + signal).clamp(0.0, 1.0)

    def stamp(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.add_signal(x, self.config.test_amplitude)

    def poison_images(
        self, x: torch.Tensor, train: Split, generator: torch.Generator
    ) -> torch.Tensor:
        return self.add_signal(x, self.config.amplitude)
