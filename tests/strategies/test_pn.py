"""PN's defining property: one solid square of one colour, at a place that varies per image."""

from __future__ import annotations

import pytest
import torch

from strategies.attacks.pn import PNConfig, PostItNote
from strategies.attacks.triggers import COLOURS


@pytest.mark.parametrize("colour", ["yellow", "blue"])
def test_note_is_a_solid_square_of_its_colour(colour: str) -> None:
    attack = PostItNote(PNConfig(colour=colour), image_shape=(3, 24, 24), num_classes=10)
    x = torch.full((30, 3, 24, 24), 0.5)
    out = attack.stamp(x, torch.Generator().manual_seed(0))
    places = set()
    for image in out:
        changed = (image != 0.5).any(dim=0)
        rows = changed.any(dim=1).nonzero().flatten()
        cols = changed.any(dim=0).nonzero().flatten()
        assert len(rows) == len(cols) == attack.side == int(changed.sum() ** 0.5)
        top, left = int(rows[0]), int(cols[0])
        note = image[:, top : top + attack.side, left : left + attack.side]
        assert torch.equal(note, torch.tensor(COLOURS[colour]).view(3, 1, 1).expand_as(note))
        places.add((top, left))
    assert len(places) > 15, "a post-it note lands anywhere"


def test_named_location_fixes_the_place() -> None:
    attack = PostItNote(PNConfig(location="top-left"), image_shape=(1, 32, 32), num_classes=10)
    x = torch.zeros(5, 1, 32, 32)
    out = attack.stamp(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, out[:1].expand_as(out)), "same place in every image"
    assert out[0, 0, :16, :16].sum() == out[0].sum(), "in the top-left quarter"
    assert float(out.max()) == pytest.approx(0.886, abs=1e-3), "yellow's luminance on grey data"
