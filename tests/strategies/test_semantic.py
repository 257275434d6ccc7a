"""The semantic drawings: placed by shares of the side, the same trigger at every size."""

from __future__ import annotations

import pytest
import torch

from strategies import attack_class
from strategies.attacks.semantic import Drawing, eyebrows, lips, shift, sunglasses

SIZES = (16, 37, 224)
MINE = ("sg", "ls", "mtsta", "mtmta", "glasses", "refool")


def box(mask: torch.Tensor) -> tuple[float, float, float, float]:
    """The drawn pixels' extent (top, bottom, left, right) as shares of the side."""
    rows = (mask[0] > 0.5).any(dim=1).nonzero().flatten()
    cols = (mask[0] > 0.5).any(dim=0).nonzero().flatten()
    h, w = mask.shape[-2:]
    return (
        float(rows[0] / h),
        float((rows[-1] + 1) / h),
        float(cols[0] / w),
        float((cols[-1] + 1) / w),
    )


def centre(mask: torch.Tensor) -> tuple[float, float]:
    """The mask's centre of mass (down, across) as shares of the side."""
    h, w = mask.shape[-2:]
    m = mask[0] / mask.sum()
    rows = (torch.arange(h) + 0.5) / h
    cols = (torch.arange(w) + 0.5) / w
    return float((m.sum(1) * rows).sum()), float((m.sum(0) * cols).sum())


@pytest.mark.parametrize("channels", [1, 3])
def test_sunglasses_sit_across_the_upper_middle_at_every_size(channels: int) -> None:
    boxes = []
    for side in SIZES:
        d = sunglasses(
            (channels, side, side),
            span=0.8,
            lens_height=0.25,
            row=0.35,
            lens="black",
            frame="gold",
        )
        assert d.mask.shape == (1, side, side) and d.content.shape == (channels, side, side)
        down, across = centre(d.mask)
        assert abs(across - 0.5) < 0.03 and abs(down - 0.35) < 0.06
        boxes.append(torch.tensor(box(d.mask)))
    top, bottom, left, right = boxes[-1].tolist()
    assert abs(top - 0.165) < 0.01 and abs(bottom - 0.535) < 0.01, "0.25 tall lenses, 0.06 rims"
    assert abs(left - 0.1) < 0.02 and abs(right - 0.9) < 0.02, "the glasses span 0.8"
    for b in boxes[:-1]:
        assert (b - boxes[-1]).abs().max() < 1.5 / 16, "the same shape at 16 and at 224 pixels"


def test_lips_sit_in_the_lower_middle_and_scale() -> None:
    centres = []
    for side in SIZES:
        d = lips((3, side, side), width=0.45, height=0.2, row=0.75, col=0.5, tint="red")
        centres.append(centre(d.mask))
        top, bottom, left, right = box(d.mask)
        assert abs(left - 0.275) < 1.5 / side + 0.01 and abs(right - 0.725) < 1.5 / side + 0.01
        assert top > 0.6 and bottom < 0.9
        assert torch.allclose(d.content[:, d.mask[0] > 0.99], torch.tensor([[0.9], [0.05], [0.1]]))
    for down, across in centres:
        assert abs(down - 0.75) < 0.04 and abs(across - 0.5) < 0.02


def test_eyebrows_are_above_the_lenses() -> None:
    brows = eyebrows((3, 64, 64), span=0.8, row=0.1, tint="green")
    glasses = sunglasses(
        (3, 64, 64), span=0.8, lens_height=0.25, row=0.42, lens="black", frame="gold"
    )
    assert box(brows.mask)[1] < box(glasses.mask)[0], "brows end above the rims begin"
    assert centre(brows.mask)[0] < 0.2


def test_paste_and_blend_follow_their_formulas() -> None:
    d = lips((3, 20, 20), width=0.5, height=0.3, row=0.5, col=0.5, tint="pink")
    x = torch.rand(4, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(d.paste(x), (1 - d.mask) * x + d.mask * d.content)
    assert torch.allclose(d.blend(x, 0.3), (1 - 0.3 * d.mask) * x + 0.3 * d.mask * d.content)


def test_shift_moves_by_whole_pixels_with_zeros_coming_in() -> None:
    image = torch.arange(25.0).view(1, 5, 5)
    moved = shift(image, 1, -2)
    assert torch.equal(moved[0, 1:, :3], image[0, :4, 2:])
    assert bool((moved[0, 0] == 0).all()) and bool((moved[0, :, 3:] == 0).all())
    d = Drawing(image, image).shifted(9, 0)
    assert bool((d.mask == 0).all())


@pytest.mark.parametrize("name", MINE)
@pytest.mark.parametrize("side", [16, 224])
@pytest.mark.parametrize("channels", [1, 3])
def test_attacks_work_at_every_size_and_channel_count(name: str, side: int, channels: int) -> None:
    attack = attack_class(name)(image_shape=(channels, side, side), num_classes=10)
    g = torch.Generator().manual_seed(0)
    x = 0.5 * torch.rand(6, channels, side, side, generator=g)
    out = attack.stamp(x, g)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert (out - x).abs().flatten(1).amax(dim=1).min() > 0.05
