"""Everything a user can name on the command line, with one line each (``arena list``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from arena.core.config import Range
from arena.core.train import TrainConfig
from arena.data import DATASETS
from arena.models import MODELS
from arena.plugins import origin
from strategies import ATTACKS, DEFENSES


def _space(config_cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        rng: Range | None = f.metadata.get("range")
        entry: dict[str, Any] = {"default": f.default, "help": f.metadata.get("help", "")}
        if rng is not None:
            entry["range"] = (
                {"choices": list(rng.choices)}
                if rng.choices is not None
                else {
                    "low": rng.low,
                    "high": "last class" if rng.high == -1 else rng.high,
                    "log": rng.log,
                }
            )
        out[f.name] = entry
    return out


def catalog() -> dict[str, Any]:
    return {
        "attacks": {
            name: {
                "description": cls.summary,
                "clean_label": cls.clean_label,
                "origin": origin("attack", name),
                "parameters": _space(cls.config_cls),
            }
            for name, cls in sorted(ATTACKS.items())
        },
        "defenses": {
            name: {
                "description": cls.summary,
                "kind": cls.kind,
                "access": cls.access,
                "origin": origin("defense", name),
                "parameters": _space(cls.config_cls),
            }
            for name, cls in sorted(DEFENSES.items())
        },
        "models": {
            name: {"description": spec.description, "origin": origin("model", name)}
            for name, spec in MODELS.items()
        },
        "datasets": {
            name: {
                "description": spec.description,
                "needs_path": spec.needs_path,
                "origin": origin("dataset", name),
            }
            for name, spec in DATASETS.items()
        },
        "training_recipe": _space(TrainConfig),
    }
