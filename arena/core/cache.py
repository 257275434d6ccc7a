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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class Entry:
    """One file of the cache: its ``kind`` (the folder under the root), the ``key`` it is
    stored under (its name up to the first dot), its path, size and modification time (POSIX
    seconds; ``None`` where the filesystem keeps none)."""

    kind: str
    key: str
    path: str
    size: int
    mtime: float | None


class ArtifactCache:
    """Models and JSON records by content key, under a directory or fsspec URL.

    ``recording()`` notes the kind and key of every artifact read, written or found while it
    is open: what a cell used (its record lists them, so that ``arena cache prune`` keeps what a
    stored duel needs)."""

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
        self._recorders: list[dict[str, set[str]]] = []

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

    @contextmanager
    def recording(self) -> Iterator[dict[str, set[str]]]:
        """``{kind: keys}`` of the artifacts read, written or found (:meth:`has`) by this cache
        object while the ``with`` block runs (recordings may nest)."""
        used: dict[str, set[str]] = {}
        self._recorders.append(used)
        try:
            yield used
        finally:
            self._recorders.remove(used)

    def _note(self, kind: str, key: str) -> None:
        for used in self._recorders:
            used.setdefault(kind, set()).add(key)

    def has(self, kind: str, key: str, suffix: str) -> bool:
        """Whether an artifact is stored (not counted as a hit or a miss)."""
        found = bool(self.fs.exists(self._path(kind, key, suffix)))
        if found:
            self._note(kind, key)
        return found

    def _read(self, kind: str, key: str, suffix: str) -> bytes | None:
        path = self._path(kind, key, suffix)
        if not self.fs.exists(path):
            self.misses += 1
            return None
        self.hits += 1
        self._note(kind, key)
        data: bytes = self.fs.cat_file(path)
        return data

    def _write(self, kind: str, key: str, suffix: str, data: bytes) -> None:
        self._note(kind, key)
        path = self._path(kind, key, suffix)
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, path)

    def load_model(self, kind: str, key: str) -> tuple[ArenaNet, dict[str, Any]] | None:
        data = self._read(kind, key, ".safetensors")
        if data is None:
            return None
        log.debug("cache hit: %s %s", kind, key[:12])
        return model_from_bytes(data, f"cached {kind} {key[:12]}")

    def save_model(self, kind: str, key: str, model: ArenaNet, header: dict[str, Any]) -> None:
        self._write(kind, key, ".safetensors", model_to_bytes(model, header))

    def load_state(
        self, kind: str, key: str
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The tensors and JSON header of a module saved with :meth:`save_state` (safetensors:
        loading never runs code)."""
        return self.load_tensors(kind, key)

    def save_state(self, kind: str, key: str, module: nn.Module, header: dict[str, Any]) -> None:
        """Any module's ``state_dict`` (a generator, an inpainter, an autoencoder), as
        safetensors with ``header`` as JSON metadata."""
        self.save_tensors(kind, key, module.state_dict(), header)

    def load_tensors(
        self, kind: str, key: str
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """Named tensors and a JSON header saved with :meth:`save_tensors` (safetensors:
        loading never runs code)."""
        data = self._read(kind, key, ".safetensors")
        if data is None:
            return None
        (n,) = struct.unpack("<Q", data[:8])
        meta = json.loads(data[8 : 8 + n]).get("__metadata__") or {}
        return safetensors.torch.load(data), json.loads(meta.get("arena", "{}"))

    def save_tensors(
        self, kind: str, key: str, tensors: dict[str, torch.Tensor], header: dict[str, Any]
    ) -> None:
        """Named tensors (none, if the header says it all) as one safetensors file with
        ``header`` as JSON metadata: one file, so a reader never sees one half without the
        other."""
        # safetensors refuses tensors that share memory: each is its own contiguous CPU copy
        own = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
        meta = {"arena": json.dumps(header, sort_keys=True, default=str)}
        self._write(kind, key, ".safetensors", safetensors.torch.save(own, metadata=meta))

    def load_json(self, kind: str, key: str) -> Any | None:
        data = self._read(kind, key, ".json")
        return None if data is None else json.loads(data)

    def save_json(self, kind: str, key: str, value: Any) -> None:
        self._write(kind, key, ".json", json.dumps(value, sort_keys=True).encode())

    def entries(self) -> Iterator[Entry]:
        """Every file under the root (none if the root is missing), with its kind and key."""
        if not self.fs.exists(self.root):
            return
        found: dict[str, dict[str, Any]] = self.fs.find(self.root, detail=True)
        start = len(self.root.rstrip("/")) + 1
        for path, info in sorted(found.items()):
            parts = path[start:].split("/")
            kind = parts[0] if len(parts) > 1 else "."
            key = parts[-1].split(".")[0]
            yield Entry(kind, key, path, int(info.get("size") or 0), _mtime(info))

    def remove(self, entries: list[Entry]) -> None:
        """Delete these files, then every folder they leave empty below the root."""
        folders = set()
        for entry in entries:
            self.fs.rm_file(entry.path)
            folders.add(entry.path.rsplit("/", 1)[0])
        root = self.root.rstrip("/")
        for folder in sorted(folders, key=len, reverse=True):
            while folder.startswith(root + "/"):
                try:
                    if self.fs.ls(folder):
                        break
                    self.fs.rmdir(folder)
                except OSError:  # gone already, or an object store's folder that never was
                    break
                folder = folder.rsplit("/", 1)[0]


def _mtime(info: dict[str, Any]) -> float | None:
    """A file's modification time from an fsspec ``info`` record, in POSIX seconds: local
    files give ``mtime``, object stores ``LastModified`` or ``last_modified``, the memory
    filesystem ``created``."""
    for name in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(name)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


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
