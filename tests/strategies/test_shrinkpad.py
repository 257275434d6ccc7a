"""ShrinkPad's transform on hand-built images, and its deployment on the tiny model."""

from __future__ import annotations

import kornia.geometry.transform as KT
import pytest
import torch

from arena.core.infer import predict
from arena.data import Splits
from arena.models import ArenaNet
from strategies.defenses.shrinkpad import ShrinkPad, shrink_pad, shrink_pixels


def test_shrink_pixels() -> None:
    assert shrink_pixels(0.125, 16) == 2 and shrink_pixels(0.125, 32) == 4
    assert shrink_pixels(0.01, 16) == 1  # at least one pixel
    assert shrink_pixels(0.9, 2) == 1  # never the whole side


def test_center_padding_holds_the_shrunk_image_inside_a_zero_border() -> None:
    x = torch.rand(3, 3, 16, 8)
    out = shrink_pad(x, 0.125, padding="center")
    assert out.shape == x.shape
    small = KT.resize(x, (14, 7), interpolation="bilinear", antialias=True)  # 2 and 1 pixels
    assert torch.allclose(out[:, :, 1:15, 0:7], small)
    border = torch.ones(16, 8, dtype=torch.bool)
    border[1:15, 0:7] = False
    assert not out[:, :, border].any()


def test_random_padding_moves_each_image_within_the_shrink() -> None:
    x = torch.ones(64, 1, 16, 16)
    out = shrink_pad(x, 0.25, generator=torch.Generator().manual_seed(0))  # 4 pixels
    assert out.shape == x.shape
    tops, lefts = set(), set()
    for img in out[:, 0]:
        rows, cols = img.nonzero(as_tuple=True)
        top, left = int(rows.min()), int(cols.min())
        assert int(rows.max()) - top == 11 and int(cols.max()) - left == 11  # a 12x12 image
        assert 0 <= top <= 4 and 0 <= left <= 4
        tops.add(top)
        lefts.add(left)
    assert len(tops) > 2 and len(lefts) > 2
    again = shrink_pad(x, 0.25, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_bad_options_name_the_choices() -> None:
    with pytest.raises(ValueError, match="random or center"):
        shrink_pad(torch.rand(1, 1, 8, 8), 0.125, padding="edge")
    with pytest.raises(ValueError, match="bilinear or nearest"):
        shrink_pad(torch.rand(1, 1, 8, 8), 0.125, interpolation="cubic")


def test_serves_the_given_model_on_shrunk_inputs(tiny: Splits, tiny_model: ArenaNet) -> None:
    deployed = ShrinkPad(seed=4).fit(tiny_model, tiny.val)
    assert deployed.model is not tiny_model  # its own copy, as every defense's; only queried
    x = tiny.test.x
    purified = deployed.purify(x)
    assert purified.shape == x.shape and not torch.equal(purified, x)
    assert torch.equal(deployed.predict(x), predict(tiny_model, purified))
    assert torch.equal(purified, ShrinkPad(seed=4).fit(tiny_model, tiny.val).purify(x))
    assert not torch.equal(purified, ShrinkPad(seed=5).fit(tiny_model, tiny.val).purify(x))
    assert deployed.purify(x[:0]).shape == (0, *x.shape[1:])


def test_show_gives_inputs_before_and_after(tiny: Splits, tiny_model: ArenaNet) -> None:
    defense = ShrinkPad()
    deployed = defense.fit(tiny_model, tiny.val)
    triggered = tiny.test.subset(torch.arange(5))
    panels = defense.show(deployed, tiny.val, triggered)
    assert [p.kind for p in panels] == ["images"] * 4
    before, after = panels[0], panels[1]
    assert torch.equal(before.data, triggered.x)
    assert torch.equal(after.data, deployed.purify(triggered.x))
    assert len(after.labels) == 5
