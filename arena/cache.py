"""The content-addressed artifact cache.

Every artifact is stored under the SHA-256 of a canonical JSON description of what produced it
(a trained model by its dataset, architecture, recipe, attack and seed; a payoff cell by both
players' configs), so identical work is never done twice and the cache can be shared by every
node of a cluster. The root is a directory or any fsspec URL (``s3://...``, ``gs://...``,
``memory://...``); writes go to a temporary name and are moved into place, so a reader never
sees half an artifact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any

import fsspec

from arena.model_files import model_from_bytes, model_to_bytes
from arena.models import ArenaNet

log = logging.getLogger(__name__)

SCHEMA = 1
"""Bumped when the meaning of a cached artifact changes, so stale entries are never reused."""

DEFAULT_CACHE = "runs/cache"


def content_key(kind: str, spec: dict[str, Any]) -> str:
    """SHA-256 of ``{"kind", "schema", **spec}`` as canonical JSON."""
    payload = json.dumps({"kind": kind, "schema": SCHEMA, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class ArtifactCache:
    """Models and JSON records by content key, under a directory or fsspec URL."""

    def __init__(self, url: str = DEFAULT_CACHE) -> None:
        self.url = url
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url)
        except (ValueError, ImportError) as e:
            raise ValueError(
                f"cannot open the cache {url!r} ({e}); give --cache a folder or an fsspec URL "
                "such as s3://bucket/arena"
            ) from None
        self.hits = 0
        self.misses = 0

    def _path(self, kind: str, key: str, suffix: str) -> str:
        return f"{self.root}/{kind}/{key[:2]}/{key}{suffix}"

    def _read(self, path: str) -> bytes | None:
        if not self.fs.exists(path):
            self.misses += 1
            return None
        self.hits += 1
        data: bytes = self.fs.cat_file(path)
        return data

    def _write(self, path: str, data: bytes) -> None:
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, path)

    def load_model(self, kind: str, key: str) -> tuple[ArenaNet, dict[str, Any]] | None:
        data = self._read(self._path(kind, key, ".safetensors"))
        if data is None:
            return None
        log.debug("cache hit: %s %s", kind, key[:12])
        return model_from_bytes(data, f"cached {kind} {key[:12]}")

    def save_model(self, kind: str, key: str, model: ArenaNet, header: dict[str, Any]) -> None:
        self._write(self._path(kind, key, ".safetensors"), model_to_bytes(model, header))

    def load_json(self, kind: str, key: str) -> Any | None:
        data = self._read(self._path(kind, key, ".json"))
        return None if data is None else json.loads(data)

    def save_json(self, kind: str, key: str, value: Any) -> None:
        self._write(self._path(kind, key, ".json"), json.dumps(value, sort_keys=True).encode())
