"""Fitted defenses in the artifact cache: a deployment kept under the content key of what made it.

A fit depends on nothing but the model's weights, the defense (its name, version and config),
its seed, the defender's clean data and the code it calls (the architectures and the shared
training loop). :func:`fit_key` hashes them (kind ``fit``), and :meth:`Defense.fit
<strategies.defenses.base.Defense.fit>` stores each deployment under it, so a defense is fitted
once per cache whoever asks: the cells of every duel, a detector's check of the clean model, a
stage that several pipelines share, ``arena defend``, ``arena show-defense``.

The model enters the key by the digest of its weights (:func:`model_digest`), not by the key of
the training that made it: the same weights reached by another road (the file ``arena train``
wrote of a cell's BadNet; the model a filter stage hands on to the next stage of a pipeline)
find the same fits. The modules' train/eval modes are not part of it (Arena's defenses set
the modes they need).

One safetensors file holds a fit, its JSON header the record (loading runs no code: no
pickle; the deployment's class is looked up among the modules already imported, never imported,
and must derive from the deployment base; a nested dataclass is only ever one that its field
declares):

* ``class``: ``module:qualname`` of the deployment, a dataclass whose fields are all it holds;
* ``fields``: every field but the served model, as JSON; a tuple as ``{"$tuple": [...]}``, a
  tensor as ``{"$tensor": NAME}`` (stored as the tensor ``NAME``), the clean images or labels the
  defense was given as ``{"$clean": "x"}`` or ``{"$clean": "y"}`` (not stored: the key holds
  their digest, so a reader is given the same ones), a
  dataclass the field declares (a config, reversed triggers) as ``{"$dataclass": NAME,
  "fields": {...}}``;
* ``model``: ``served`` is ``"given"`` when the served model has the given model's weights (a
  detector, a filter), so that none are stored, or ``"weights"`` (a repair), stored as the
  tensors ``model/NAME`` and loaded into a copy of the given model that the deployment's class
  first reshapes as its repair did (``Deployment.served_model``); ``training`` and ``frozen``
  name the modules left in training mode and the parameters without gradients.

A deployment that does not fit this form (an attribute that is not a field, a network other
than the served model, an object of an unknown type, a dictionary with keys other than
strings) raises :class:`Unserialisable` and is served uncached; a record that cannot be read
back is fitted again.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
import logging
import sys
import types
import typing
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor, nn

from arena.core.cache import ArtifactCache, content_key, tensor_digest
from arena.core.train import VERSION as TRAINER_VERSION
from arena.data import VERSION as DATA_VERSION
from arena.data.splits import Split
from arena.models import VERSION as MODELS_VERSION

log = logging.getLogger(__name__)

KIND = "fit"
FORMAT = 1
"""The layout of a stored fit; raised when it changes, so that old records are never read."""

MODEL = "model/"  # the prefix of the served model's tensors in a record


class Unserialisable(TypeError):
    """A deployment (or a stored record of one) that this module cannot write (or read)."""


class Rebuilt(Protocol):
    """What a deployment class gives this module: its served model, and how to reshape a copy
    of the given model into the served one before its weights are loaded."""

    model: nn.Module

    @classmethod
    def served_model(
        cls, given: nn.Module, state: dict[str, Tensor], fields: dict[str, Any]
    ) -> nn.Module: ...


D = TypeVar("D", bound=Rebuilt)


def model_digest(model: nn.Module) -> str:
    """SHA-256 of a model's class, the names in its state and every tensor of it (weights and
    buffers); its train/eval modes and gradient flags are left out."""
    state = model.state_dict()
    names = json.dumps([f"{type(model).__module__}.{type(model).__qualname__}", list(state)])
    digest = tensor_digest(*(t.reshape(-1) for t in state.values()))
    return hashlib.sha256(f"{names};{digest}".encode()).hexdigest()


def fit_key(defense: dict[str, Any], seed: int, model: nn.Module, clean: Split) -> str:
    """The content key of a fit: the defense's identity (its ``describe()``: name, version,
    config), its seed, the model's weights, the clean data, and the versions of the code that
    every defense may call."""
    spec = {
        "defense": defense,
        "seed": seed,
        "model": model_digest(model),
        "data": tensor_digest(clean.x, clean.y),
        "versions": {"data": DATA_VERSION, "models": MODELS_VERSION, "trainer": TRAINER_VERSION},
        "format": FORMAT,
    }
    return content_key(KIND, spec)


def save_fit(
    cache: ArtifactCache,
    key: str,
    deployment: Rebuilt,
    given: nn.Module,
    clean: Split,
    header: dict[str, Any],
) -> bool:
    """Store ``deployment`` (fitted on ``given`` with ``clean``) under ``key``; ``False``, with
    a debug line, when it cannot be written (see the module docstring)."""
    try:
        record, tensors = encode(deployment, given, clean)
    except Unserialisable as e:
        log.debug("not caching the fit of %s: %s", type(deployment).__name__, e)
        return False
    cache.save_tensors(KIND, key, tensors, {**header, **record})
    return True


def load_fit(
    cache: ArtifactCache, key: str, given: nn.Module, clean: Split, base: type[D]
) -> D | None:
    """The deployment stored under ``key``, rebuilt around a copy of ``given`` and ``clean``;
    ``None`` when there is none, or (with a warning) when the record cannot be read back."""
    hit = cache.load_tensors(KIND, key)
    if hit is None:
        return None
    tensors, record = hit
    try:
        deployment = decode(record, tensors, given, clean, base)
    except (Unserialisable, KeyError, TypeError, ValueError, RuntimeError) as e:
        log.warning("the cached fit %s cannot be read back (%s); fitting again", key[:12], e)
        return None
    log.debug("cache hit: fit %s", key[:12])
    return deployment


def encode(
    deployment: Rebuilt, given: nn.Module, clean: Split
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The record and the tensors of ``deployment`` (see the module docstring)."""
    cls = type(deployment)
    names = _check_rebuildable(cls, deployment)
    hints = typing.get_type_hints(cls)
    tensors: dict[str, Tensor] = {}
    values = {n: getattr(deployment, n) for n in names if n != "model"}
    fields = {n: _encode(v, hints.get(n, Any), n, tensors, clean) for n, v in values.items()}
    served = deployment.model
    state = served.state_dict()
    if _same_weights(served, given):
        how = "given"
    else:
        built = cls.served_model(copy.deepcopy(given), state, values).state_dict()
        shapes = {k: v.shape for k, v in state.items()}
        if {k: v.shape for k, v in built.items()} != shapes:
            raise Unserialisable(
                f"{cls.__name__}.served_model does not rebuild the served model's shape"
            )
        how = "weights"
        tensors.update({MODEL + k: v for k, v in state.items()})
    model = {
        "served": how,
        "training": [n for n, m in served.named_modules() if m.training],
        "frozen": [n for n, p in served.named_parameters() if not p.requires_grad],
    }
    record = {"class": f"{cls.__module__}:{cls.__qualname__}", "fields": fields, "model": model}
    return record, tensors


def decode(
    record: dict[str, Any],
    tensors: dict[str, Tensor],
    given: nn.Module,
    clean: Split,
    base: type[D],
) -> D:
    """The deployment of a record of :func:`encode`, around a copy of ``given``."""
    cls = _lookup(record["class"], base)
    names = set(_check_rebuildable(cls))
    fields = record["fields"]
    if set(fields) | {"model"} != names:
        raise Unserialisable(f"the record's fields are not those of {cls.__name__}")
    hints = typing.get_type_hints(cls)
    values = {n: _decode(v, hints.get(n, Any), tensors, clean) for n, v in fields.items()}
    model = copy.deepcopy(given)
    served = record["model"]
    if served["served"] == "weights":
        state = {k[len(MODEL) :]: v for k, v in tensors.items() if k.startswith(MODEL)}
        model = cls.served_model(model, state, values)
        model.load_state_dict(state, strict=True)
    elif served["served"] != "given":
        raise Unserialisable(f"unknown served model {served['served']!r}")
    training, frozen = set(served["training"]), set(served["frozen"])
    for name, module in model.named_modules():
        module.training = name in training
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen)
    built: D = typing.cast(Any, cls)(model=model, **values)  # a dataclass of these fields
    return built


def _check_rebuildable(cls: type, deployment: Any = None) -> list[str]:
    """The field names of a deployment class that its dataclass ``__init__`` takes, all of
    them; raises :class:`Unserialisable` unless the instance holds nothing else."""
    if not dataclasses.is_dataclass(cls):
        raise Unserialisable(f"{cls.__name__} is not a dataclass")
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    if any(not f.init for f in fields) or list(inspect.signature(cls).parameters) != names:
        raise Unserialisable(f"{cls.__name__} is not built from its fields alone")
    extra = sorted(set(vars(deployment)) - set(names)) if deployment is not None else []
    if extra:
        raise Unserialisable(f"{cls.__name__} holds {', '.join(extra)} outside its fields")
    return names


def _same_weights(served: nn.Module, given: nn.Module) -> bool:
    if type(served) is not type(given):
        return False
    a, b = served.state_dict(), given.state_dict()
    # a defense may have moved its copy to the device it computes on: the values decide
    return list(a) == list(b) and all(
        a[k].dtype == b[k].dtype
        and a[k].shape == b[k].shape
        and torch.equal(a[k].cpu(), b[k].cpu())
        for k in a
    )


def _dataclass_types(hint: Any) -> dict[str, type]:
    """The dataclasses a field's type names, by qualified name (``Reversed | None``: one)."""
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    return {
        t.__qualname__: t for t in options if isinstance(t, type) and dataclasses.is_dataclass(t)
    }


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _encode(value: Any, hint: Any, name: str, tensors: dict[str, Tensor], clean: Split) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Tensor):
        for part in ("x", "y"):
            if value is getattr(clean, part):
                return {"$clean": part}
        tensors[name] = value
        return {"$tensor": name}
    if isinstance(value, list | tuple):
        items = [_encode(v, Any, f"{name}.{i}", tensors, clean) for i, v in enumerate(value)]
        return {"$tuple": items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        if not all(isinstance(k, str) and not k.startswith("$") for k in value):
            raise Unserialisable(f"{name} has keys that are not plain strings")
        return {k: _encode(v, Any, f"{name}.{k}", tensors, clean) for k, v in value.items()}
    cls = type(value)
    if dataclasses.is_dataclass(value) and _dataclass_types(hint).get(cls.__qualname__) is cls:
        names = _check_rebuildable(cls, value)
        hints = typing.get_type_hints(cls)
        return {
            "$dataclass": cls.__qualname__,
            "fields": {
                n: _encode(getattr(value, n), hints.get(n, Any), f"{name}.{n}", tensors, clean)
                for n in names
            },
        }
    raise Unserialisable(f"{name} holds a {cls.__name__}")


def _decode(value: Any, hint: Any, tensors: dict[str, Tensor], clean: Split) -> Any:
    if isinstance(value, list):
        return [_decode(v, Any, tensors, clean) for v in value]
    if not isinstance(value, dict):
        return value
    if "$tensor" in value:
        return tensors[value["$tensor"]]
    if "$clean" in value:
        part = value["$clean"]
        if part not in ("x", "y"):
            raise Unserialisable(f"unknown clean data {part!r}")
        return getattr(clean, part)
    if "$tuple" in value:
        return tuple(_decode(v, Any, tensors, clean) for v in value["$tuple"])
    if "$dataclass" in value:
        cls = _dataclass_types(hint).get(value["$dataclass"])
        if cls is None:
            raise Unserialisable(f"a {value['$dataclass']} where {hint} is declared")
        hints = typing.get_type_hints(cls)
        fields = value["fields"]
        if set(fields) != set(_check_rebuildable(cls)):
            raise Unserialisable(f"the record's fields are not those of {cls.__name__}")
        return cls(**{n: _decode(v, hints.get(n, Any), tensors, clean) for n, v in fields.items()})
    return {k: _decode(v, Any, tensors, clean) for k, v in value.items()}


def _lookup(name: str, base: type[D]) -> type[D]:
    """The class ``module:qualname`` among the modules already imported (none is imported
    here), if it derives from ``base``."""
    module_name, _, qualname = name.partition(":")
    target: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if not (isinstance(target, type) and issubclass(target, base)):
        raise Unserialisable(f"{name} is not a deployment class of a loaded module")
    return target
