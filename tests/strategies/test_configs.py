"""Every registered strategy's config: each field declares how the studies treat it."""

from __future__ import annotations

import dataclasses

import pytest

from arena.core.config import searchable_fields
from strategies import ATTACKS, DEFENSES

CONFIGS = [
    *(pytest.param(cls.config_cls, id=f"attack-{name}") for name, cls in sorted(ATTACKS.items())),
    *(pytest.param(cls.config_cls, id=f"defense-{n}") for n, cls in sorted(DEFENSES.items())),
]


@pytest.mark.parametrize("config_cls", CONFIGS)
def test_every_field_is_searchable_or_fixed_and_its_default_in_range(config_cls: type) -> None:
    ranges = {f.name: rng for f, rng in searchable_fields(config_cls)}
    for f in dataclasses.fields(config_cls):
        assert f.name in ranges or "help" in f.metadata, f"{f.name}: declare it with param or fixed"
        if f.name in ranges:
            assert ranges[f.name].contains(f.default, num_classes=10), f.name
