"""BadNets (dynamic)'s defining property: the same patch, at a different place per image."""

from __future__ import annotations

import pytest
import torch

from strategies.attacks.badnets import pattern_image
from strategies.attacks.badnets_dynamic import BadNetsDynamic, BadNetsDynamicConfig


def changed_boxes(before: torch.Tensor, after: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """Per image, the (top, left, bottom, right) box of the pixels that changed."""
    boxes = []
    for changed in (after != before).any(dim=1):
        rows = changed.any(dim=1).nonzero().flatten()
        cols = changed.any(dim=0).nonzero().flatten()
        boxes.append((int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])))
    return boxes


def test_patch_lands_in_many_places_and_is_the_badnets_pattern() -> None:
    attack = BadNetsDynamic(image_shape=(3, 32, 32), num_classes=10)
    x = torch.full((40, 3, 32, 32), 0.5)  # grey: every pixel of the rgb pattern differs from it
    out = attack.stamp(x, torch.Generator().manual_seed(0))
    boxes = changed_boxes(x, out)
    side = attack.side
    assert all(b - t + 1 == side and r - lft + 1 == side for t, lft, b, r in boxes)
    assert len({(t, lft) for t, lft, _, _ in boxes}) > 20, "the place must vary per image"
    pattern = pattern_image("rgb", side, 3)
    for i, (t, lft, _, _) in enumerate(boxes):
        assert torch.equal(out[i, :, t : t + side, lft : lft + side], pattern)


def test_places_cover_the_whole_image() -> None:
    attack = BadNetsDynamic(image_shape=(3, 16, 16), num_classes=10)
    x = torch.full((400, 3, 16, 16), 0.5)
    boxes = changed_boxes(x, attack.stamp(x, torch.Generator().manual_seed(1)))
    tops = {t for t, _, _, _ in boxes}
    lefts = {lft for _, lft, _, _ in boxes}
    assert tops == set(range(16 - attack.side + 1)) and lefts == tops


def test_same_generator_seed_gives_same_places() -> None:
    attack = BadNetsDynamic(image_shape=(3, 16, 16), num_classes=10)
    x = torch.rand(8, 3, 16, 16)
    first = attack.stamp(x, torch.Generator().manual_seed(3))
    again = attack.stamp(x, torch.Generator().manual_seed(3))
    other = attack.stamp(x, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("channels", [1, 3])
def test_random_pattern_differs_per_image(channels: int) -> None:
    attack = BadNetsDynamic(
        BadNetsDynamicConfig(pattern="random", size=0.3),
        image_shape=(channels, 20, 20),
        num_classes=10,
    )
    x = torch.full((6, channels, 20, 20), 0.5)
    out = attack.stamp(x, torch.Generator().manual_seed(0))
    patches = []
    for i, (t, lft, _, _) in enumerate(changed_boxes(x, out)):
        patches.append(out[i, :, t : t + attack.side, lft : lft + attack.side])
    assert all(set(p.unique().tolist()) <= {0.0, 1.0} for p in patches)
    assert len({tuple(p.flatten().tolist()) for p in patches}) == len(patches)
