"""What stored duels refer to in the artifact cache, and which cache files ``arena cache prune``
removes.

A duel's ``duel.json`` lists the keys of the cells it stands on (``cells.payoff_matrix``: every
cell of its payoff matrix on the duel's seeds; ``cells.interval``: the cells its value's
interval measured on fresh seeds; ``audit.cells``: the cells that confirmed the audit's
responses). Each cell's record lists what it used (``artifacts``: the clean model, the BadNet,
its trained parts, the fitted defenses, the clean model's verdict, by kind). A stored duel refers
to those cells and to everything they used; nothing else (the cells of the studies' trials, whose
values the Optuna storage keeps; the models of strategies no duel kept) is needed to replay it.

A cell computed before cells kept their list names no artifacts; while a stored duel refers to
such a cell, what it used is unknown and every artifact that is not a cell is kept (the prune
says so). A ``duel.json`` written before duels kept their cells is refused: it could refer to
anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena.core.cache import ArtifactCache, Entry


class UnknownReferences(ValueError):
    """Stored duels that cannot say what they refer to."""


@dataclass
class References:
    """The cache entries stored duels refer to: by kind, their keys. ``blind``: some referenced
    cell does not list what it used, so that every artifact but the cells is kept."""

    duels: list[Path] = field(default_factory=list)
    keys: dict[str, set[str]] = field(default_factory=dict)
    blind: list[str] = field(default_factory=list)  # the cells that list nothing

    def keeps(self, entry: Entry) -> bool:
        if self.blind and entry.kind != "cell":
            return True
        return entry.key in self.keys.get(entry.kind, set())


def duel_files(folders: Sequence[str | Path]) -> list[Path]:
    """Every ``duel.json`` under ``folders``; a folder that is missing, or none found in all,
    is a one-line error (pruning by references with no duel would empty the cache)."""
    found: list[Path] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise UnknownReferences(
                f"--duels-dir {folder} is not a folder; give the folder the duels were written "
                "to (default runs/duels, or each duel's --out)"
            )
        found += sorted(folder.rglob("duel.json"))
    if not found:
        where = ", ".join(map(str, folders))
        raise UnknownReferences(
            f"no duel.json under {where}, so every artifact would count as unreferenced; give "
            "--duels-dir the folder the duels were written to, or prune with --older-than alone"
        )
    return found


def duel_cells(path: Path) -> set[str]:
    """The cell keys one ``duel.json`` lists (its matrix, its interval and its audit)."""
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UnknownReferences(f"{path} cannot be read as a duel.json ({e})") from None
    cells = record.get("cells")
    if not isinstance(cells, dict):
        raise UnknownReferences(
            f"{path} was written before duels listed their cells, so what it needs is unknown; "
            "run that duel again (a finished duel replays from the storage and the cache) or "
            "move it out of --duels-dir"
        )
    keys = {k for part in cells.values() for k in part}
    audit = record.get("audit")
    if isinstance(audit, dict):
        keys |= set(audit.get("cells", []))
    return keys


def references(cache: ArtifactCache, duels: Iterable[Path]) -> References:
    """What the stored ``duels`` refer to in ``cache`` (see the module docstring)."""
    refs = References(duels=list(duels))
    cells = set().union(*(duel_cells(p) for p in refs.duels))
    refs.keys["cell"] = set(cells)
    for key in sorted(cells):
        record = cache.load_json("cell", key)
        if record is None:
            continue  # not in this cache: it uses nothing here
        used = record.get("artifacts")
        if not isinstance(used, dict):
            refs.blind.append(key)
            continue
        for kind, keys in used.items():
            refs.keys.setdefault(kind, set()).update(keys)
    return refs


def prunable(
    entries: Iterable[Entry],
    *,
    now: float,
    older_than: float | None = None,
    refs: References | None = None,
) -> list[Entry]:
    """The entries to remove: those last written more than ``older_than`` seconds before
    ``now`` (when given; a file whose time the filesystem does not keep stays) that ``refs``
    does not keep (when given). Both given: what is old and unreferenced."""
    out = []
    for entry in entries:
        if older_than is not None and (entry.mtime is None or now - entry.mtime <= older_than):
            continue
        if refs is not None and refs.keeps(entry):
            continue
        out.append(entry)
    return out
