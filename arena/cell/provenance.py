"""Where a figure came from: the ``schema_version`` and ``provenance`` of every JSON output.

``duel.json``, the leaderboard and every ``--json`` output carry them, so a number quoted in a
paper can be traced to the code, the libraries, the data and the seeds that made it:

* ``schema_version``: the layout of the JSON (:data:`SCHEMA_VERSION`; it grows when a key
  changes meaning or goes away, never when one is added);
* ``provenance.arena``: Arena's version, and the commit (with ``dirty`` if the working tree
  had changes) when it runs from a git checkout;
* ``provenance.libraries``: Python, torch, optuna, ray, numpy and scipy versions;
* ``provenance.data``: the dataset's reference and the SHA-256 of its three splits (images and
  labels), so two runs on "the same" dataset can be checked to be on the same bytes;
* ``provenance.seeds``: the seeds the figures were measured on;
* ``provenance.plugins``: each registered attack or defense defined outside Arena's own
  ``strategies`` package, with its module and version.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from arena.core.cache import tensor_digest
from arena.data import DataRef
from arena.data.splits import Splits
from arena.plugins import is_builtin, origin, tables

SCHEMA_VERSION = 1
LIBRARIES = ("torch", "optuna", "ray", "numpy", "scipy")


@functools.lru_cache(maxsize=1)
def arena_version() -> dict[str, Any]:
    """Arena's installed version, and the git commit of the checkout it runs from, if any."""
    try:
        version = importlib.metadata.version("arena")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    out: dict[str, Any] = {"version": version, "commit": None}
    root = Path(__file__).resolve().parents[2]
    git = shutil.which("git")
    if git and (root / ".git").exists():
        try:
            run = functools.partial(
                subprocess.run, cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
            out["commit"] = run([git, "rev-parse", "HEAD"]).stdout.strip() or None
            out["dirty"] = bool(run([git, "status", "--porcelain", "--untracked-files=no"]).stdout)
        except (OSError, subprocess.SubprocessError):
            pass
    return out


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def data_digest(splits: Splits) -> str:
    """SHA-256 of the train, validation and test images and labels, in that order."""
    return tensor_digest(*(t for s in (splits.train, splits.val, splits.test) for t in (s.x, s.y)))


@functools.lru_cache(maxsize=8)
def _dataset(ref: DataRef) -> dict[str, Any]:
    from arena.cell.setting import load_data

    return {**asdict(ref), "digest": data_digest(load_data(ref))}


def plugins() -> dict[str, dict[str, Any]]:
    """Registered attacks, defenses, models and datasets that a plugin brought
    (:mod:`arena.plugins`), or whose class lives outside Arena's ``strategies`` package: by
    ``kind:name``, the module, the version and the plugin it came from."""
    out = {}
    for kind, table in tables().items():
        for name, entry in sorted(table.items()):
            thing = entry if kind in ("attack", "defense") else getattr(entry, "build", None)
            thing = thing or getattr(entry, "loader", None)
            module = getattr(thing, "__module__", "") or ""
            outside = kind in ("attack", "defense") and not module.startswith("strategies.")
            if not is_builtin(kind, name) or outside:
                out[f"{kind}:{name}"] = {
                    "module": module,
                    "version": getattr(entry, "version", None),
                    "origin": origin(kind, name),
                }
    return out


def provenance(data: DataRef | None = None, seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """The ``provenance`` record (see the module docstring); ``data`` and ``seeds`` where the
    output measured something."""
    out: dict[str, Any] = {"arena": arena_version(), "libraries": library_versions()}
    if data is not None:
        out["data"] = _dataset(data)
    if seeds is not None:
        out["seeds"] = list(seeds)
    out["plugins"] = plugins()
    return out


def stamped(record: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """``record`` with ``schema_version`` and ``provenance`` added (``kwargs``: those of
    :func:`provenance`)."""
    return {"schema_version": SCHEMA_VERSION, **record, "provenance": provenance(**kwargs)}
