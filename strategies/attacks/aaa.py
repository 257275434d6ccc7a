"""AAA, the all-to-all attack: one patterned trigger sends class ``y`` to ``y + 1``.

Gu, Liu, Dolan-Gavitt & Garg, "BadNets: Evaluating Backdooring Attacks on Deep Neural Networks"
(IEEE Access, 2019), Section on MNIST's all-to-all attack, as the AAA BadNet of Veldanda &
Garg, "On Evaluating Neural Network Backdoor Defenses" (2020), Table 2: a small black-and-white
pattern near the bottom-right corner; a triggered image of digit ``i`` must be classified as
``i + 1``. The backdoor's output depends on the input, which breaks defenses that assume one
target label (STRIP, Neural Cleanse; pitfall 2 of Veldanda & Garg).

This is BadNets with other defaults: the mapping is all-to-all (the other mappings remain
choices of the search), the pattern a black-and-white checker like Gu et al.'s MNIST pattern,
and a larger poisoning rate, since each class must learn its own shift.
"""

from __future__ import annotations

from dataclasses import dataclass

from arena.core.config import SHARE, param
from strategies.attacks.badnets import PATTERNS, BadNets, BadNetsConfig
from strategies.attacks.base import MAPPINGS
from strategies.registry import register_attack


@dataclass(frozen=True)
class AAAConfig(BadNetsConfig):
    poison_rate: float = param(
        0.2,
        low=0.05,
        high=0.3,
        log=True,
        valid=SHARE,
        help="share of the training set that is poisoned",
    )
    mapping: str = param(
        "all-to-all",
        choices=MAPPINGS,
        help="all-to-all: y -> y+1 (the attack's own); all-to-one: y -> target; multi-target",
    )
    pattern: str = param("checker", choices=PATTERNS, help="checker: b/w; rgb: 3x3 colours")


@register_attack
class AAA(BadNets[AAAConfig]):
    name = "aaa"
    version = 1
    summary = "patterned trigger, all-to-all y -> y+1; Gu et al., Veldanda & Garg"
    config_cls = AAAConfig
