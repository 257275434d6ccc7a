"""Optuna storage URLs and study names.

Every study of a duel lives in one Optuna storage (default ``sqlite:///runs/arena.db``), which
``optuna-dashboard`` opens directly. Any URL that Optuna's ``RDBStorage`` accepts works
(SQLite, PostgreSQL, MySQL); a ``.log`` path or ``journal:///path`` uses Optuna's file journal,
which suits shared file systems without a database server.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import BaseStorage

DEFAULT_STORAGE = "sqlite:///runs/arena.db"


class StorageError(ValueError):
    """A storage URL that Optuna cannot open."""


def open_storage(url: str) -> BaseStorage:
    """An Optuna storage for ``url``, creating a local SQLite file's folder if needed."""
    if url.startswith("journal://") or url.endswith(".log"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = url.removeprefix("journal://")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; one line for all
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(
            f"cannot open Optuna storage {url!r} ({reason}); give --storage a URL such as "
            f"{DEFAULT_STORAGE} or journal:///path/to/arena.log"
        ) from None


def study_name(duel: str, side: str, round_: int) -> str:
    """``<duel>/r<round>/<side>``: the dashboard sorts a duel's studies by round."""
    return f"{duel}/r{round_:02d}/{side}"


def duel_studies(storage: BaseStorage, duel: str) -> list[str]:
    """Names of the studies of ``duel`` in ``storage``."""
    prefix = f"{duel}/r"
    return sorted(
        s.study_name for s in storage.get_all_studies() if s.study_name.startswith(prefix)
    )
