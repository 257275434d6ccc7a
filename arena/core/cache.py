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
import struct
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import fsspec
import safetensors.torch
import torch
from torch import nn

from arena.core.model_files import model_from_bytes, model_to_bytes
from arena.core.train import VERSION as TRAINER_VERSION
from arena.models import ArenaNet

log = logging.getLogger(__name__)

SCHEMA = 1
"""Bumped when the meaning of a cached artifact changes, so stale entries are never reused."""

DEFAULT_CACHE = "runs/cache"

M = TypeVar("M", bound=nn.Module)


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

    def check_writable(self) -> None:
        """Fail, in one line naming the cache, unless an artifact can be written here and read
        back: checked before any work, so that a model is never trained only to be lost."""
        folder = f"{self.root}/probe-{uuid.uuid4().hex}"  # the check leaves nothing behind
        made = [folder]  # and every missing folder above it, outermost first
        parent = self.root
        while parent and not self.fs.exists(parent):
            made.insert(0, parent)
            parent = parent.rsplit("/", 1)[0] if "/" in parent else ""
        try:
            self.fs.makedirs(folder, exist_ok=True)
            self.fs.pipe_file(f"{folder}/probe", b"arena")
            readable = self.fs.cat_file(f"{folder}/probe") == b"arena"
            self.fs.rm(f"{folder}/probe")
            for path in reversed(made):
                self.fs.rmdir(path)
        except OSError as e:
            reason = e.strerror or type(e).__name__
            raise ValueError(
                f"the cache {self.url!r} is not writable ({reason}); give --cache a folder you "
                "can write to, or an fsspec URL that accepts writes"
            ) from None
        if not readable:
            raise ValueError(f"the cache {self.url!r} does not read back what it was given")

    def _path(self, kind: str, key: str, suffix: str) -> str:
        return f"{self.root}/{kind}/{key[:2]}/{key}{suffix}"

    def has(self, kind: str, key: str, suffix: str) -> bool:
        """Whether an artifact is stored (not counted as a hit or a miss)."""
        return bool(self.fs.exists(self._path(kind, key, suffix)))

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

    def load_state(
        self, kind: str, key: str
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The tensors and JSON header of a module saved with :meth:`save_state` (safetensors:
        loading never runs code)."""
        data = self._read(self._path(kind, key, ".safetensors"))
        if data is None:
            return None
        (n,) = struct.unpack("<Q", data[:8])
        meta = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
        return safetensors.torch.load(data), json.loads(meta.get("arena", "{}"))

    def save_state(self, kind: str, key: str, module: nn.Module, header: dict[str, Any]) -> None:
        """Any module's ``state_dict`` (a generator, an inpainter, an autoencoder), as
        safetensors with ``header`` as JSON metadata."""
        tensors = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
        meta = {"arena": json.dumps(header, sort_keys=True, default=str)}
        self._write(
            self._path(kind, key, ".safetensors"), safetensors.torch.save(tensors, metadata=meta)
        )

    def load_json(self, kind: str, key: str) -> Any | None:
        data = self._read(self._path(kind, key, ".json"))
        return None if data is None else json.loads(data)

    def save_json(self, kind: str, key: str, value: Any) -> None:
        self._write(self._path(kind, key, ".json"), json.dumps(value, sort_keys=True).encode())


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-256 of tensors' shapes, dtypes and bytes: the identity of data a part is trained on
    (a defense's clean validation images), so a cache key never needs the dataset's name."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{tuple(t.shape)}{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


_MEMO: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
_MEMO_SIZE = 16


def versioned(spec: dict[str, Any], version: int) -> dict[str, Any]:
    """``spec`` of a part that a strategy of ``version`` trains with the shared loop, with the
    versions of both (the identity :func:`cached_module` keys it by)."""
    return {**spec, "versions": {"strategy": version, "trainer": TRAINER_VERSION}}


def cached_module(
    cache: ArtifactCache | None,
    kind: str,
    spec: dict[str, Any],
    build: Callable[[], M],
    fit: Callable[[M], Any],
    *,
    version: int,
) -> M:
    """A trained helper network (an attack's trigger generator, a defense's inpainter or
    autoencoder): ``build()`` makes it, ``fit(module)`` trains it in place, once per content
    key of ``(kind, spec)``. The weights come from ``cache`` when it holds them, and otherwise
    from this process's last few trainings (Ray reuses worker processes across trials), so a
    part is trained once per cache and at most once per process. Returned in eval mode with
    gradients off. ``version`` is that of the strategy that trains the part (its class's
    ``version``): it enters the key with the shared trainer's, so a changed strategy or trainer
    never reads a part trained by the old code."""
    spec = versioned(spec, version)
    key = content_key(kind, spec)
    module = build()
    state = _MEMO.get(key)
    if state is not None:
        module.load_state_dict(state)
        if cache is not None and not cache.has(kind, key, ".safetensors"):
            cache.save_state(kind, key, module, {"kind": kind, **spec})  # a cache new to us
    else:
        hit = None if cache is None else cache.load_state(kind, key)
        if hit is not None:
            module.load_state_dict(hit[0])
        else:
            fit(module)
            if cache is not None:
                cache.save_state(kind, key, module, {"kind": kind, **spec})
        state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    _MEMO[key] = state
    _MEMO.move_to_end(key)
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return module.eval().requires_grad_(False)
