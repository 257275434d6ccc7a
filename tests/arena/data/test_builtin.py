"""The built-in datasets (digits, shapes), the split helpers and the registry."""

from __future__ import annotations

import pytest
import torch

import arena.data.common
import arena.data.digits
import arena.data.folder
import arena.data.shapes
from arena.data import DATASETS, DEFAULT_DATASET, DatasetError, Splits, load_dataset
from arena.data.common import (
    finish,
    resize_images,
    seeded_generator,
    split_three_ways,
    stratified_partition,
    stratified_subsample,
)
from arena.data.digits import _raw_digits, hsv_to_rgb, ink_colours
from arena.data.shapes import SHAPE_KINDS, _normal_rows, load_shapes, make_shapes, shapes_images


@pytest.fixture(scope="module")
def digits() -> Splits:
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def shapes() -> Splits:
    return load_dataset("shapes", seed=0)


def _check_tensors(splits: Splits, shape: tuple[int, int, int]) -> None:
    for part in (splits.train, splits.val, splits.test):
        assert part.x.dtype == torch.float32 and part.y.dtype == torch.int64
        assert tuple(part.x.shape[1:]) == shape
        assert float(part.x.min()) >= 0.0 and float(part.x.max()) <= 1.0
        assert set(part.y.unique().tolist()) == set(range(splits.num_classes))


def test_partition_is_disjoint_complete_and_stratified() -> None:
    y = torch.arange(1000) % 7
    parts = stratified_partition(y, (0.6, 0.2, 0.2), seed=3)
    joined = torch.cat(parts)
    assert joined.unique().numel() == joined.numel() == 1000
    for part, share in zip(parts, (0.6, 0.2, 0.2), strict=True):
        counts = torch.bincount(y[part], minlength=7).float()
        expected = share * torch.bincount(y).float()
        assert torch.all((counts - expected).abs() <= 1.0)
    again = stratified_partition(y, (0.6, 0.2, 0.2), seed=3)
    other = stratified_partition(y, (0.6, 0.2, 0.2), seed=4)
    assert all(torch.equal(a, b) for a, b in zip(parts, again, strict=True))
    assert not torch.equal(parts[0], other[0])


def test_subsample_keeps_class_proportions() -> None:
    y = torch.cat([torch.zeros(300), torch.ones(100), torch.full((40,), 2)]).long()
    keep = stratified_subsample(y, 44, seed=0)
    assert keep.numel() == 44 and keep.unique().numel() == 44
    for count, expected in zip(torch.bincount(y[keep]).tolist(), (30, 10, 4), strict=True):
        assert abs(count - expected) <= 1
    assert torch.equal(stratified_subsample(y, 1000, seed=0), torch.arange(440))


def test_digits_shapes_sizes_and_ranges(digits: Splits) -> None:
    _check_tensors(digits, (3, 16, 16))
    assert digits.num_classes == 10 and digits.name == "digits"
    sizes = (len(digits.train), len(digits.val), len(digits.test))
    assert sum(sizes) == 1797
    assert abs(sizes[0] - 0.6 * 1797) <= 10 and abs(sizes[1] - 0.2 * 1797) <= 10


def test_digits_splits_share_no_image(digits: Splits) -> None:
    rows = [p.x.flatten(1) for p in (digits.train, digits.val, digits.test)]
    everything = torch.cat(rows)
    assert torch.unique(everything, dim=0).shape[0] == everything.shape[0]


def test_digits_are_coloured_on_black(digits: Splits) -> None:
    x = digits.train.x
    ink = x.amax(dim=1) > 0.5
    per_image = x.permute(0, 2, 3, 1)[ink]  # ink pixels, (P, 3)
    spread = (per_image.amax(dim=1) - per_image.amin(dim=1)).mean()
    assert spread > 0.15, "ink should be coloured, not grey"
    corners = x[:, :, 0, 0]
    assert float(corners.max()) < 0.05, "background should be black"
    colour = x.sum(dim=(2, 3))  # x = ink * colour, so channel sums are proportional to colour
    dominant = colour.argmax(dim=1)
    assert set(dominant.tolist()) == {0, 1, 2}, "ink hues should vary across images"
    saturation = 1 - colour.amin(dim=1) / colour.amax(dim=1)
    assert (saturation < 0.15).any() and (saturation > 0.3).any()


def test_digits_are_deterministic_per_seed(digits: Splits) -> None:
    again = load_dataset("digits", seed=0)
    other = load_dataset("digits", seed=1)
    assert torch.equal(digits.train.x, again.train.x)
    assert torch.equal(digits.test.y, again.test.y)
    assert not torch.equal(digits.train.y[:100], other.train.y[:100])


def test_digits_image_size_and_limit() -> None:
    small = load_dataset("digits", image_size=8, limit=50, seed=2)
    _check_tensors(small, (3, 8, 8))
    assert max(len(small.train), len(small.val), len(small.test)) == 50


def test_hsv_to_rgb_known_colours() -> None:
    h = torch.tensor([0.0, 1 / 6, 2 / 3, 0.3])
    s = torch.tensor([1.0, 1.0, 1.0, 0.0])
    v = torch.tensor([1.0, 1.0, 0.5, 0.7])
    expected = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 0, 0.5], [0.7, 0.7, 0.7]])
    assert torch.allclose(hsv_to_rgb(h, s, v), expected, atol=1e-6)


def test_shapes_default(shapes: Splits) -> None:
    _check_tensors(shapes, (3, 32, 32))
    assert shapes.num_classes == len(SHAPE_KINDS) == 6
    assert (len(shapes.train), len(shapes.val), len(shapes.test)) == (1800, 600, 600)
    assert torch.bincount(shapes.test.y).tolist() == [100] * 6
    assert shapes.train.x.std(dim=(2, 3)).mean() > 0.05, "images should not be flat"


def test_shapes_deterministic_and_seeded() -> None:
    a = load_shapes(seed=5, n=120, image_size=20)
    b = load_shapes(seed=5, n=120, image_size=20)
    c = load_shapes(seed=6, n=120, image_size=20)
    assert tuple(a.image_shape) == (3, 20, 20)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    assert not torch.equal(a.train.x, c.train.x)


def test_shapes_classes_and_ood_images() -> None:
    four = load_shapes(n=80, num_classes=4, image_size=16)
    assert four.num_classes == 4 and set(four.train.y.tolist()) == {0, 1, 2, 3}
    x = shapes_images(10, 24, 1)
    assert x.shape == (10, 3, 24, 24) and x.dtype == torch.float32
    assert torch.equal(x, shapes_images(10, 24, 1))
    assert not torch.equal(x, shapes_images(10, 24, 2))
    with pytest.raises(DatasetError, match="2 to 6 classes"):
        load_shapes(num_classes=9)


def test_shape_classes_differ_in_area() -> None:
    """Discs fill more of their box than rings, squares than crosses: the masks are real."""
    x = load_shapes(n=600, image_size=32, seed=0)
    pool = torch.cat([x.train.x, x.val.x, x.test.x])
    labels = torch.cat([x.train.y, x.val.y, x.test.y])
    background = pool[:, :, :1, :1]
    area = ((pool - background).abs().amax(dim=1) > 0.3).float().mean(dim=(1, 2))
    mean_area = torch.stack([area[labels == k].mean() for k in range(6)])
    disc, square, cross, ring, bar = (
        mean_area[SHAPE_KINDS.index(k)] for k in ("disc", "square", "cross", "ring", "bar")
    )
    assert disc > ring and square > cross and square > bar


def test_registry_names_and_default() -> None:
    assert set(DATASETS) == {"digits", "shapes", "cifar10", "mnist", "gtsrb", "folder"}
    assert DEFAULT_DATASET == "digits" and not DATASETS["digits"].needs_path
    assert all(spec.needs_path for n, spec in DATASETS.items() if n not in ("digits", "shapes"))
    assert all(spec.description and spec.name == n for n, spec in DATASETS.items())


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(DatasetError) as info:
        load_dataset("imagenet")
    message = str(info.value)
    assert "imagenet" in message and "\n" not in message
    assert all(name in message for name in DATASETS)


@pytest.mark.parametrize("name", ["cifar10", "mnist", "gtsrb", "folder"])
def test_file_datasets_need_a_path(name: str) -> None:
    with pytest.raises(DatasetError, match="give its path"):
        load_dataset(name)


def test_bad_options_are_refused() -> None:
    with pytest.raises(DatasetError, match="takes no path"):
        load_dataset("digits", path="/tmp")
    with pytest.raises(DatasetError, match="image_size"):
        load_dataset("digits", image_size=0)
    with pytest.raises(DatasetError, match="image_size must be 4 to 1024 pixels, got 4096"):
        load_dataset("shapes", image_size=4096, limit=1)
    with pytest.raises(DatasetError, match="limit"):
        load_dataset("shapes", limit=0)


def _same(a: Splits, b: Splits) -> bool:
    return a.num_classes == b.num_classes and all(
        torch.equal(x.x, y.x) and torch.equal(x.y, y.y)
        for x, y in ((a.train, b.train), (a.val, b.val), (a.test, b.test))
    )


@pytest.mark.parametrize(
    ("image_size", "limit", "seed"), [(None, 40, 0), (24, 12, 3), (8, None, 1)]
)
def test_digits_limit_first_gives_the_images_of_the_whole_pool(
    image_size: int | None, limit: int | None, seed: int
) -> None:
    """Digits choose the split and the limit from the labels and colour only those images:
    the same tensors as colouring the whole pool, then splitting and capping it."""
    images, labels = _raw_digits()
    ink = resize_images(torch.from_numpy(images).float().div_(16.0).unsqueeze(1), image_size or 16)
    colours = ink_colours(ink.shape[0], seeded_generator(seed, salt=3))
    x = (ink * colours[:, :, None, None]).clamp_(0.0, 1.0)
    pool = split_three_ways("digits", x, torch.from_numpy(labels), num_classes=10, seed=seed)
    whole = finish(pool, seed=seed, image_size=image_size, limit=limit)
    assert _same(load_dataset("digits", seed=seed, image_size=image_size, limit=limit), whole)


@pytest.mark.parametrize(("image_size", "limit", "seed"), [(None, 30, 0), (20, 9, 2), (5, 7, 1)])
def test_shapes_limit_first_gives_the_images_of_the_whole_pool(
    image_size: int | None, limit: int | None, seed: int
) -> None:
    """Shapes render only the images the split and the limit keep, the same ones
    ``make_shapes`` makes for the whole pool."""
    x, y = make_shapes(600, image_size or 32, seed, num_classes=4)
    pool = split_three_ways("shapes", x, y, num_classes=4, seed=seed)
    whole = finish(pool, seed=seed, image_size=image_size, limit=limit)
    mine = load_shapes(seed=seed, image_size=image_size, limit=limit, n=600, num_classes=4)
    assert _same(mine, whole)


@pytest.mark.parametrize("width", [48, 75, 108, 3072])
@pytest.mark.parametrize("chunk", [16, 1000, 1 << 14])
def test_noise_drawn_in_chunks_is_one_draw(
    monkeypatch: pytest.MonkeyPatch, width: int, chunk: int
) -> None:
    """Kept rows of noise drawn a chunk at a time equal those of one draw, and leave the
    generator where one draw leaves it."""
    monkeypatch.setattr(arena.data.shapes, "_NOISE_CHUNK", chunk)
    rows = 37
    keep = torch.tensor([0, 3, 4, 17, 30, 36])
    one, chunked = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    expected = torch.randn(rows, width, generator=one)[keep]
    assert torch.equal(_normal_rows(rows, width, keep, chunked), expected)
    assert torch.equal(torch.rand(8, generator=one), torch.rand(8, generator=chunked))


@pytest.mark.parametrize("name", ["digits", "shapes"])
def test_limit_applies_before_resizing(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """With ``limit``, no loader resizes or renders more images than it keeps."""
    sizes: list[int] = []

    def spy(x: torch.Tensor, size: int) -> torch.Tensor:
        sizes.append(int(x.shape[0]))
        return resize_images(x, size)

    for module in (arena.data.common, arena.data.digits, arena.data.shapes, arena.data.folder):
        monkeypatch.setattr(module, "resize_images", spy)
    splits = load_dataset(name, image_size=64, limit=2)
    assert splits.image_shape == (3, 64, 64) and len(splits.train) == 2
    assert sizes and max(sizes) <= 6, sizes


def test_huge_image_size_with_a_small_limit_is_cheap() -> None:
    """The largest side with ``limit=1`` resizes three digits, not all 1,797."""
    splits = load_dataset("digits", image_size=1024, limit=1)
    assert splits.image_shape == (3, 1024, 1024)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1, 1, 1)


def test_images_that_would_not_fit_in_memory_are_refused_before_resizing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import arena.data.common as common

    monkeypatch.setattr(common, "available_memory", lambda: 2**20)  # 1 MiB free
    with pytest.raises(DatasetError, match=r"more than half of the 0.0 GiB .*--image-size"):
        load_dataset("digits", image_size=64, limit=30)
    monkeypatch.setattr(common, "available_memory", lambda: 2**34)
    assert load_dataset("digits", image_size=64, limit=30).image_shape == (3, 64, 64)
