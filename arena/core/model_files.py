"""Model files: safetensors weights plus a JSON header, never pickle.

A model file is a standard safetensors file whose ``__metadata__`` holds one entry, ``arena``:
a JSON object with the architecture (``model``: arch, image shape, classes) and whatever the
writer records (training recipe, attack, dataset). Loading parses the header as JSON and the
tensors as raw little-endian arrays: nothing in the file can execute code, which matters
because the threat model has users downloading BadNets from model zoos. Pickle and
``torch.save`` files are refused outright.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from arena.models import ArenaNet, build_model

FORMAT = "arena-model/1"
_PICKLE_PREFIXES = (b"\x80", b"PK\x03\x04")  # pickle protocol >= 2; torch.save's zip archive


class ModelFileError(ValueError):
    """A model file that Arena refuses to load (one line: the problem and the fix)."""


def model_to_bytes(model: ArenaNet, header: dict[str, Any] | None = None) -> bytes:
    """Serialise ``model`` with ``header`` (JSON-ready) to safetensors bytes."""
    meta = {**(header or {}), "format": FORMAT, "model": model.describe()}
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    return safetensors.torch.save(tensors, metadata={"arena": json.dumps(meta, sort_keys=True)})


def read_header(data: bytes, source: str = "model file") -> dict[str, Any]:
    """The Arena header of safetensors ``data``, checked; raises :class:`ModelFileError`."""
    if data.startswith(_PICKLE_PREFIXES) and data[8:9] != b"{":  # a header length can end in 0x80
        raise ModelFileError(
            f"{source} is a pickle or torch.save file, which can run code when loaded; "
            "Arena reads only safetensors model files (write one with `arena train`)"
        )
    if len(data) < 8:
        raise ModelFileError(f"{source} is too short to be a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    try:
        raw = json.loads(data[8 : 8 + n])
        meta = dict(json.loads(raw["__metadata__"]["arena"]))  # a JSON list etc. is no header
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFileError(
            f"{source} is not an Arena safetensors model file ({type(e).__name__}: no valid "
            "'arena' header); write one with `arena train`"
        ) from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{source} has format {meta.get('format')!r}; expected {FORMAT!r}")
    if not isinstance(meta.get("model"), dict):
        raise ModelFileError(f"{source} has no network description ('model') in its header")
    return dict(meta)


def model_from_bytes(data: bytes, source: str = "model file") -> tuple[ArenaNet, dict[str, Any]]:
    """Rebuild the network a model file describes and load its weights (strictly)."""
    meta = read_header(data, source)
    spec = meta["model"]
    try:
        model = build_model(spec["arch"], tuple(spec["image_shape"]), int(spec["num_classes"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{source}: cannot build the model its header names: {e}") from None
    try:
        tensors = safetensors.torch.load(data)
    except Exception as e:  # safetensors raises its own error type for corrupt payloads
        raise ModelFileError(f"{source}: corrupt safetensors payload ({e})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    wrong = [
        f"{k} {tuple(tensors[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if missing or extra or wrong:
        problems = (
            ([f"missing {', '.join(missing[:3])}"] if missing else [])
            + ([f"unexpected {', '.join(extra[:3])}"] if extra else [])
            + ([f"shape {wrong[0]}"] if wrong else [])
        )
        raise ModelFileError(
            f"{source}: tensors do not match its config ({spec['arch']}): {'; '.join(problems)}"
        )
    model.load_state_dict({k: t.to(expected[k].dtype) for k, t in tensors.items()})
    model.eval()
    return model, meta


def save_model(path: str | Path, model: ArenaNet, header: dict[str, Any] | None = None) -> None:
    Path(path).write_bytes(model_to_bytes(model, header))


def load_model(path: str | Path) -> tuple[ArenaNet, dict[str, Any]]:
    """Load a model file; a missing, pickled or inconsistent file is a :class:`ModelFileError`."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"no model file at {p}; write one with `arena train --out {p}`")
    return model_from_bytes(p.read_bytes(), str(p))


def torch_device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
