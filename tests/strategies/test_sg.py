"""SG's defining property: a large sunglasses trigger where the config puts it, at any size."""

from __future__ import annotations

import pytest
import torch

from arena.data import Splits
from strategies.attacks.sg import SG, SGConfig


def rows_and_cols(changed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return changed.any(dim=1).nonzero().flatten(), changed.any(dim=0).nonzero().flatten()


@pytest.mark.parametrize("side", [16, 64, 224])
def test_sunglasses_cover_the_configured_band_of_the_image(side: int) -> None:
    config = SGConfig(span=0.6, lens_height=0.2, row=0.4)
    attack = SG(config, image_shape=(3, side, side), num_classes=10)
    x = torch.full((2, 3, side, side), 0.5)
    changed = (attack.stamp(x, torch.Generator()) - x).abs().amax(dim=(0, 1)) > 0.1
    rows, cols = rows_and_cols(changed)
    pixel = 1.0 / side
    assert abs(cols[0] / side - 0.2) <= pixel + 0.01 and abs((cols[-1] + 1) / side - 0.8) <= pixel
    centre_row = (rows[0] + rows[-1] + 1) / 2 / side
    assert abs(centre_row - 0.4) <= pixel, "the lenses are centred at row 0.4"
    assert (rows[-1] + 1 - rows[0]) / side < 0.2 + 2 * 0.06 + 2 * pixel, "lens height + rims"
    assert float(changed.float().mean()) > 0.1, "a large trigger"


def test_stamp_is_the_opaque_drawing_and_nothing_else(tiny: Splits) -> None:
    attack = SG(image_shape=tiny.image_shape, num_classes=tiny.num_classes)
    x = tiny.test.x[:10]
    out = attack.stamp(x, torch.Generator())
    mask, content = attack.drawing.mask, attack.drawing.content
    assert torch.allclose(out, (1 - mask) * x + mask * content)
    assert torch.equal(out[:, :, mask[0] == 0], x[:, :, mask[0] == 0])
    full = mask[0] == 1
    assert torch.allclose(out[:, :, full], content[:, full].expand(10, -1, -1))


def test_row_moves_the_glasses_down() -> None:
    def top(row: float) -> int:
        attack = SG(SGConfig(row=row), image_shape=(1, 64, 64), num_classes=10)
        return int((attack.drawing.mask[0] > 0.5).any(dim=1).nonzero()[0])

    assert top(0.25) + 0.2 * 64 - 1 <= top(0.45) <= top(0.25) + 0.2 * 64 + 1
