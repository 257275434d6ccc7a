"""Model files: safetensors weights plus a JSON header, never pickle.

A model file is a standard safetensors file whose ``__metadata__`` holds one entry, ``arena``:
a JSON object with the architecture (``model``: arch, image shape, classes) and whatever the
writer records (training recipe, attack, dataset). Loading parses the header as JSON and the
tensors as raw little-endian arrays: nothing in the file can execute code, which matters
because the threat model has users downloading BadNets from model zoos. Pickle and
``torch.save`` files are refused outright.

A header is untrusted too: before anything is allocated, :func:`check_spec` holds the network
it describes to the bounds below (a registered architecture, :data:`MAX_CLASSES` classes,
images of 1 or 3 channels and sides of at most ``MAX_IMAGE_SIZE``), and the size of the state
it implies, counted on PyTorch's ``meta`` device (shapes without storage), to
:data:`MAX_STATE_BYTES` and to what the file holds.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from arena.data.common import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from arena.models import MODELS, ArenaNet, build_model

FORMAT = "arena-model/1"
_PICKLE_PREFIXES = (b"\x80", b"PK\x03\x04")  # pickle protocol >= 2; torch.save's zip archive

MAX_CLASSES = 100_000
"""Most classes a model file may declare (ImageNet-21k has about 21,800)."""
CHANNELS = (1, 3)
"""Channels a model file's images may have: grayscale or RGB, as every dataset gives."""
MAX_STATE_BYTES = 1 << 31
"""Most bytes of weights and buffers a model file's network may need (2 GiB; ResNet-18 takes
45 MB, the largest built-in network at the largest image size about 1.5 GB)."""
MAX_FILE_BYTES = MAX_STATE_BYTES + (1 << 24)
"""Largest model file read at all: the largest state plus room for the headers."""


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_spec(
    spec: dict[str, Any], source: str = "model file", *, file_bytes: int | None = None
) -> tuple[str, tuple[int, int, int], int]:
    """The architecture, image shape and class count of a header's ``model`` entry, each held
    to the module's bounds before any tensor is allocated; raises :class:`ModelFileError`
    naming ``source`` and the field. With ``file_bytes``, a network whose state would need
    more bytes than the file holds is refused too."""
    arch = spec.get("arch")
    if not isinstance(arch, str) or arch not in MODELS:
        raise ModelFileError(
            f"{source}: header field model.arch={arch!r} is not a known architecture (known: "
            f"{', '.join(sorted(MODELS))}); if a plugin's, load the plugin that defines it with "
            "--plugin or install it (a file's header never imports anything)"
        )
    classes = spec.get("num_classes")
    if not isinstance(classes, int) or isinstance(classes, bool) or not 2 <= classes <= MAX_CLASSES:
        raise ModelFileError(
            f"{source}: header field model.num_classes={classes!r} is not an integer "
            f"from 2 to {MAX_CLASSES}"
        )
    shape = spec.get("image_shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 3
        or not all(_is_int(d) for d in shape)
        or shape[0] not in CHANNELS
        or not all(MIN_IMAGE_SIZE <= side <= MAX_IMAGE_SIZE for side in shape[1:])
    ):
        raise ModelFileError(
            f"{source}: header field model.image_shape={shape!r} is not [channels, height, "
            f"width] with channels 1 or 3 and sides from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}"
        )
    image_shape = (shape[0], shape[1], shape[2])
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            state = build_model(arch, image_shape, classes).state_dict()
    except (TypeError, ValueError) as e:  # the architecture's own limits, e.g. a minimum side
        raise ModelFileError(f"{source}: cannot build the model its header names: {e}") from None
    needed = sum(t.numel() * t.element_size() for t in state.values())
    if needed > MAX_STATE_BYTES:
        raise ModelFileError(
            f"{source}: header field model describes a {arch} of {needed} bytes of weights, "
            f"more than the {MAX_STATE_BYTES} a model file may hold"
        )
    if file_bytes is not None and needed > file_bytes:
        raise ModelFileError(
            f"{source}: header field model describes a {arch} of {needed} bytes of weights, "
            f"but the file holds only {file_bytes} bytes (truncated, or not the network it names)"
        )
    return arch, image_shape, classes


MAX_CONFIG_BYTES = 1 << 20
"""Largest model config read (a few fields of JSON)."""


def config_header(path: str | Path, source: str = "model file") -> dict[str, Any]:
    """The header of a plain safetensors file of weights (a network trained outside Arena,
    saved with ``safetensors.torch.save_file(model.state_dict(), ...)``), read from the JSON
    config beside it: ``{"arch": ..., "image_shape": [C, H, W], "num_classes": N}`` and, if
    given, ``"data"`` (the defaults of the defender's data, as a model file records them).
    The config is untrusted like any header: its fields are checked the same way
    (:func:`check_spec`), and an architecture only a plugin defines must be loaded first."""
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"no model config at {p}; give --model-config a JSON file")
    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelFileError(f"{p} is larger than a model config may be ({MAX_CONFIG_BYTES} bytes)")
    try:
        config = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{p} is not JSON ({type(e).__name__}); give a JSON object") from None
    fields = ("arch", "image_shape", "num_classes")
    if not isinstance(config, dict) or any(k not in config for k in fields):
        raise ModelFileError(
            f"{p} is not a model config: give a JSON object with arch, image_shape [C, H, W] "
            "and num_classes (and optionally data)"
        )
    unknown = sorted(set(config) - {*fields, "data"})
    if unknown:
        raise ModelFileError(f"{p}: unknown field {unknown[0]!r}; known: {', '.join(fields)}, data")
    header = {"format": FORMAT, "model": {k: config[k] for k in fields}}
    if "data" in config:
        header["data"] = config["data"]
    return header


def model_from_bytes(
    data: bytes, source: str = "model file", config: str | Path | None = None
) -> tuple[ArenaNet, dict[str, Any]]:
    """Rebuild the network a model file describes and load its weights (strictly); the
    header's description is checked (:func:`check_spec`) before the network is built. With
    ``config``, the file may be a plain safetensors file and its network is the config's
    (:func:`config_header`)."""
    if config is None:
        meta = read_header(data, source)
    else:
        if data.startswith(_PICKLE_PREFIXES) and data[8:9] != b"{":
            read_header(data, source)  # refuses a pickle in one line
        meta = config_header(config, source)
    spec = meta["model"]
    arch, image_shape, classes = check_spec(spec, source, file_bytes=len(data))
    try:
        model = build_model(arch, image_shape, classes)
    except (TypeError, ValueError) as e:
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


def load_model(
    path: str | Path, config: str | Path | None = None
) -> tuple[ArenaNet, dict[str, Any]]:
    """Load a model file (with ``config``, a plain safetensors file of weights and the JSON
    config of its network: :func:`config_header`); a missing, pickled or inconsistent file is
    a :class:`ModelFileError`."""
    p = Path(path)
    if not p.exists():
        raise ModelFileError(f"no model file at {p}; write one with `arena train --out {p}`")
    if p.is_dir():
        raise ModelFileError(f"{p} is a directory, not a model file; give the model file's path")
    if not p.is_file():
        raise ModelFileError(
            f"{p} is not a regular file (a device or a pipe?); give a model file written by "
            "`arena train`"
        )
    size = p.stat().st_size
    if size == 0:
        raise ModelFileError(
            f"{p} is empty, not a model file; give a model file written by `arena train`"
        )
    if size > MAX_FILE_BYTES:
        raise ModelFileError(
            f"{p} holds {size} bytes, more than the {MAX_FILE_BYTES} of the largest model file "
            "Arena reads"
        )
    return model_from_bytes(p.read_bytes(), str(p), config)


def torch_device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
