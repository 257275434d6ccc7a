"""The content-addressed cache: stable keys, and the same behaviour on a directory and fsspec."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
import torch

from arena.core.cache import ArtifactCache, content_key
from arena.models import build_model

SPEC: dict[str, Any] = {
    "data": {"name": "digits", "path": None, "image_size": None, "limit": 120, "seed": 0},
    "arch": "small-cnn",
    "train": {"optimizer": "adam", "lr": 0.003, "epochs": 20},
    "seed": 0,
    "attack": {"name": "badnets", "config": {"size": 0.1875, "target": 0}},
}


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    return value


def _changes() -> list[tuple[str, dict[str, Any]]]:
    """One spec per leaf value of SPEC, that value changed."""
    out: list[tuple[str, dict[str, Any]]] = []

    def walk(node: dict[str, Any], path: list[str]) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, [*path, key])
                continue
            changed = _reordered(_reordered(SPEC))  # a deep copy
            target = changed
            for p in path:
                target = target[p]
            target[key] = "other" if value is None or isinstance(value, str) else value + 1
            out.append((".".join([*path, key]), changed))

    walk(SPEC, [])
    return out


def test_key_is_stable_across_orderings() -> None:
    key = content_key("badnet", SPEC)
    assert len(key) == 64 and int(key, 16) >= 0
    assert content_key("badnet", _reordered(SPEC)) == key
    assert content_key("badnet", dict(SPEC)) == key


@pytest.mark.parametrize(("where", "spec"), _changes(), ids=[w for w, _ in _changes()])
def test_key_changes_with_any_value(where: str, spec: dict[str, Any]) -> None:
    assert content_key("badnet", spec) != content_key("badnet", SPEC), where


def test_key_changes_with_kind_and_types() -> None:
    assert content_key("clean", SPEC) != content_key("badnet", SPEC)
    assert content_key("x", {"a": 1}) != content_key("x", {"a": "1"})
    assert content_key("x", {"a": [1, 2]}) != content_key("x", {"a": [2, 1]})


@pytest.fixture(params=["dir", "memory"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactCache]:
    if request.param == "dir":
        yield ArtifactCache(str(tmp_path / "cache"))
        return
    url = f"memory://arena-test-{uuid.uuid4().hex}"
    yield ArtifactCache(url)
    fs, root = fsspec.core.url_to_fs(url)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _files(cache: ArtifactCache) -> list[str]:
    if not cache.fs.exists(cache.root):
        return []
    return [str(p) for p in cache.fs.find(cache.root)]


def test_model_round_trip_and_counts(cache: ArtifactCache) -> None:
    torch.manual_seed(0)
    net = build_model("small-cnn", (3, 16, 16), 4).eval()
    key = content_key("clean", SPEC)
    assert cache.load_model("clean", key) is None
    assert (cache.hits, cache.misses) == (0, 1)
    cache.save_model("clean", key, net, {"seed": 7})
    hit = cache.load_model("clean", key)
    assert hit is not None
    model, header = hit
    assert (cache.hits, cache.misses) == (1, 1)
    assert header["seed"] == 7 and header["model"]["num_classes"] == 4
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    assert cache.load_model("badnet", key) is None  # kinds do not share entries
    assert (cache.hits, cache.misses) == (1, 2)
    files = _files(cache)
    assert len(files) == 1 and files[0].endswith(f"clean/{key[:2]}/{key}.safetensors")


def test_json_round_trip_overwrite_and_no_temporaries(cache: ArtifactCache) -> None:
    value = {"payoff": 0.25, "cells": [[1, 2], [3, 4]], "name": "strip", "flag": None}
    keys = [content_key("cell", {"i": i}) for i in range(3)]
    for k in keys:
        assert cache.load_json("cell", k) is None
    cache.save_json("cell", keys[0], value)
    cache.save_json("cell", keys[1], [1, 2, 3])
    cache.save_json("cell", keys[1], {"replaced": True})
    assert cache.load_json("cell", keys[0]) == value
    assert cache.load_json("cell", keys[1]) == {"replaced": True}
    assert cache.load_json("cell", keys[2]) is None
    assert (cache.hits, cache.misses) == (2, 4)
    files = _files(cache)
    assert len(files) == 2
    assert not [f for f in files if ".tmp" in f]


def test_two_caches_on_one_root_share_entries(cache: ArtifactCache) -> None:
    key = content_key("cell", {"shared": True})
    cache.save_json("cell", key, {"v": 1})
    other = ArtifactCache(cache.url)
    assert other.load_json("cell", key) == {"v": 1}
    assert (other.hits, other.misses) == (1, 0)


def test_cached_module_trains_once_per_cache_and_key(cache: ArtifactCache) -> None:
    import arena.core.cache as cache_module
    from arena.core.cache import cached_module, versioned

    cache_module._MEMO.clear()
    fits: list[int] = []

    def fit(module: torch.nn.Linear) -> None:
        fits.append(1)
        with torch.no_grad():
            module.weight.fill_(float(len(fits)))

    def build() -> torch.nn.Linear:
        return torch.nn.Linear(3, 2)

    def key(spec: dict[str, str], version: int = 1) -> str:
        return content_key("generator", versioned(spec, version))

    first = cached_module(cache, "generator", {"attack": "x"}, build, fit, version=1)
    cache_module._MEMO.clear()  # a new process: only the cache remembers
    again = cached_module(
        ArtifactCache(cache.url), "generator", {"attack": "x"}, build, fit, version=1
    )
    other = cached_module(cache, "generator", {"attack": "y"}, build, fit, version=1)
    fresh = ArtifactCache(cache.url + "-other")
    # from memory, then stored
    cached_module(fresh, "generator", {"attack": "y"}, build, fit, version=1)
    assert fresh.has("generator", key({"attack": "y"}), ".safetensors")
    assert len(fits) == 2, "the same key is trained once; another key is trained anew"
    assert torch.equal(first.weight, again.weight)
    assert not torch.equal(first.weight, other.weight)
    assert not first.training and not any(p.requires_grad for p in first.parameters())
    state, header = cache.load_state("generator", key({"attack": "x"}))
    assert header["kind"] == "generator" and header["attack"] == "x"
    assert header["versions"]["strategy"] == 1 and set(state) == {"weight", "bias"}
    # a new version of the strategy that trains it never reads the old part
    bumped = cached_module(cache, "generator", {"attack": "x"}, build, fit, version=2)
    assert len(fits) == 3 and not torch.equal(first.weight, bumped.weight)
    assert cache.has("generator", key({"attack": "x"}, 2), ".safetensors")


def test_tensor_digest_tells_data_apart() -> None:
    from arena.core.cache import tensor_digest

    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert tensor_digest(x) == tensor_digest(x.clone())
    assert tensor_digest(x) != tensor_digest(x[:3])
    y = x.clone()
    y[0, 0, 0, 0] += 1e-3
    assert tensor_digest(x) != tensor_digest(y)
    assert tensor_digest(x.reshape(4, 192)) != tensor_digest(x)
    assert tensor_digest(torch.tensor(3)) != tensor_digest(torch.tensor(4)), "0-dim tensors too"


def test_check_writable_leaves_nothing_and_names_an_unwritable_cache(tmp_path) -> None:
    ArtifactCache(str(tmp_path / "new" / "cache")).check_writable()
    assert list(tmp_path.iterdir()) == []  # the check made no folder it did not remove
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"the cache .*file/c.* is not writable .*--cache"):
        ArtifactCache(str(tmp_path / "file" / "c")).check_writable()
