"""The defenses' fine-tuning helper: the shared loop, on the model it is handed."""

from __future__ import annotations

import copy

import torch

from arena.data import Splits
from arena.models import ArenaNet
from strategies.defenses.tuning import fine_tune


def test_no_epochs_change_nothing(tiny: Splits, tiny_model: ArenaNet) -> None:
    net = copy.deepcopy(tiny_model)
    result = fine_tune(net, tiny.val, epochs=0, lr=1e-2, seed=0)
    assert result.steps == 0
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), tiny_model.state_dict().values(), strict=True)
    )


def test_trains_in_place_keeps_the_normalisation_and_drops_gradients(
    tiny: Splits, tiny_model: ArenaNet
) -> None:
    net = copy.deepcopy(tiny_model)
    with torch.no_grad():
        net.normalize.set([0.5] * 3, [0.25] * 3)
    seen: list[torch.Tensor] = []

    def transform(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        seen.append(x)
        return x + 0.01 * torch.rand(x.shape, generator=generator)

    result = fine_tune(net, tiny.val, epochs=2, lr=1e-3, seed=0, batch_size=32, transform=transform)
    assert result.status == "ok" and result.steps == 2 * (len(tiny.val) // 32) == len(seen)
    assert not torch.equal(first_conv(net), first_conv(tiny_model))
    assert torch.equal(net.normalize.std, torch.full((1, 3, 1, 1), 0.25))
    assert not net.training and all(p.grad is None for p in net.parameters())


def first_conv(model: ArenaNet) -> torch.Tensor:
    return next(m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d))
