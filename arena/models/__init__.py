"""Model registry: every architecture by its CLI name, each sized from the data's shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from arena.models.base import ArenaNet, Normalize
from arena.models.cla_net import cla_net
from arena.models.deepid import deepid
from arena.models.nin import nin
from arena.models.preact_resnet import preact_resnet18
from arena.models.resnet import resnet18
from arena.models.small_cnn import small_cnn

VERSION = 1
"""Raised by one whenever an architecture changes (its layers, their sizes or their
initialisation): it enters the cache key of every model
(:func:`arena.cell.setting.code_versions`)."""

Builder = Callable[[tuple[int, int, int], int], ArenaNet]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Builder
    description: str


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("small-cnn", small_cnn, "two conv blocks and an MLP head; the fast default"),
        ModelSpec("cla-net", cla_net, "Veldanda & Garg's CLA network (Table 5): 2 convs, 2 FCs"),
        ModelSpec("nin", nin, "Network-in-Network: 3 mlpconv blocks, global average pooling"),
        ModelSpec("deepid", deepid, "DeepID: 4 convs, 160-unit layer fed by pool3 and conv4"),
        ModelSpec("resnet18", resnet18, "ResNet-18; CIFAR stem up to 64 px, ImageNet stem above"),
        ModelSpec("preact-resnet18", preact_resnet18, "pre-activation ResNet-18, same stages"),
    ]
}

DEFAULT_MODEL = "small-cnn"


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a plugin's architecture to :data:`MODELS` (``spec.build(image_shape, num_classes)``
    returns an :class:`ArenaNet`, whose stages white-box defenses cut); a name already there
    is refused."""
    if spec.name in MODELS:
        raise ValueError(f"model {spec.name!r} is registered twice")
    MODELS[spec.name] = spec
    return spec


def build_model(name: str, image_shape: tuple[int, int, int], num_classes: int) -> ArenaNet:
    """A freshly initialised ``name`` network for images of ``image_shape`` (C, H, W)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    model = MODELS[name].build(tuple(image_shape), int(num_classes))  # type: ignore[arg-type]
    if not isinstance(model, ArenaNet):  # a plugin's builder: Arena reaches into its stages
        raise ValueError(
            f"model {name!r} built a {type(model).__name__}, not an arena.models.ArenaNet; "
            "build the network as ArenaNet stages (or a subclass), so defenses can see them"
        )
    if model.arch != name:  # its model files record the arch, which must rebuild it
        raise ValueError(f"model {name!r} built a network whose arch is {model.arch!r}")
    return model


__all__ = [
    "MODELS",
    "DEFAULT_MODEL",
    "ArenaNet",
    "ModelSpec",
    "Normalize",
    "build_model",
    "register_model",
]
