"""Optuna storage URLs and study names.

Every study of a duel lives in one Optuna storage, which ``arena dashboard`` (or
``optuna-dashboard URL``) opens directly. Three kinds, by URL:

* ``sqlite:///runs/arena.db`` (the default): a file; one duel at a time writes it (only the
  driver writes studies, so this holds on a Ray cluster too).
* ``journal:///path/arena.log`` (or any path ending in ``.log``): Optuna's append-only file
  journal, with file locks; for a shared file system without a database server.
* ``postgresql://user:password@host:5432/arena`` (or any other URL SQLAlchemy knows, such as
  ``mysql+pymysql://``): a database server, for several duels or drivers at once and a
  dashboard on another machine. PostgreSQL needs ``pip install 'arena[postgres]'``.

A storage is opened (and a server reached, with a 10-second connection timeout) before a duel
does any work, so a wrong URL or an unreachable server is a one-line error. Passwords never
appear in messages.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage

DEFAULT_STORAGE = "sqlite:///runs/arena.db"
CONNECT_TIMEOUT_S = 10
SERVER_SCHEMES = ("postgresql", "postgres", "mysql")
DRIVERS = {"postgresql": "psycopg", "postgres": "psycopg"}


class StorageError(ValueError):
    """A storage URL that Optuna cannot open."""


def journal_path(url: str) -> str | None:
    """The file of a journal storage URL, or ``None`` for any other URL."""
    if url.startswith("journal://"):
        return url.removeprefix("journal://")
    if "://" not in url and url.endswith(".log"):
        return url
    return None


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///`` URL (``None`` for other URLs and in-memory SQLite)."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return url.removeprefix("sqlite:///")
    return None


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    if "@" not in url or "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:  # noqa: BLE001 - not a database URL: cut the credentials out by hand
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


def _scheme(url: str) -> str:
    """The database of a URL, without its driver: ``postgresql`` for ``postgresql+psycopg://``."""
    return url.split("://", 1)[0].split("+", 1)[0]


def _engine_kwargs(url: str) -> dict[str, Any]:
    """A connection timeout for database servers (so an unreachable host fails in seconds, not
    at the operating system's TCP timeout), and connections checked before use (a long duel
    outlives idle connections the server drops)."""
    if _scheme(url) not in SERVER_SCHEMES:
        return {}
    return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}, "pool_pre_ping": True}


def _error(url: str, reason: str) -> StorageError:
    return StorageError(
        f"cannot open Optuna storage {redact(url)!r} ({reason}); give --storage a URL such as "
        f"{DEFAULT_STORAGE}, journal:///path/to/arena.log or postgresql://user@host/db"
    )


def open_storage(url: str, *, create: bool = True) -> BaseStorage:
    """An Optuna storage for ``url``, creating a local file's folder if needed. With
    ``create=False`` a SQLite or journal file must already exist (the dashboard reads a duel's
    storage, it never makes an empty one)."""
    journal = journal_path(url)
    local = journal or sqlite_path(url)
    if local is not None and not create and not Path(local).is_file():
        raise StorageError(
            f"no Optuna storage at {local} ({url}); run a duel first, or give --storage the URL "
            "a duel wrote to"
        )
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        try:
            Path(journal).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(journal))
        except OSError as exc:
            raise _error(url, exc.strerror or type(exc).__name__) from None
    if local is not None:
        try:
            Path(local).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _error(url, exc.strerror or type(exc).__name__) from None
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    except ImportError as exc:
        hint = "; pip install 'arena[postgres]'" if _scheme(url) in DRIVERS else ""
        raise _error(url, f"no database driver: {exc.__cause__ or exc}{hint}") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many kinds; one line for all
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = lines[0] if lines else type(exc).__name__
        if reason.startswith("(") and len(lines) > 1:  # "(psycopg2.OperationalError) ..." first
            reason = f"{reason} {lines[1]}"
        raise _error(url, reason[:300]) from None


def check_writable(storage: BaseStorage, url: str) -> None:
    """Fail, in one line naming the storage, unless a study can be created in it and deleted
    again (a read-only SQLite file or a database role without the right opens fine, then
    fails at the first write): checked before any work."""
    name = f"arena-write-probe-{uuid.uuid4().hex}"
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" for a probe
    try:
        study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], name)
        storage.delete_study(study_id)
    except Exception as exc:  # noqa: BLE001 - each backend raises its own kinds; one line for all
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = (lines[0] if lines else type(exc).__name__)[:200]
        raise StorageError(
            f"the Optuna storage {redact(url)!r} cannot be written ({reason}); give --storage a "
            "file or database this user may write to"
        ) from None
    finally:
        optuna.logging.set_verbosity(level)


def study_name(duel: str, side: str, round_: int) -> str:
    """``<duel>/r<round>/<side>``: the dashboard sorts a duel's studies by round."""
    return f"{duel}/r{round_:02d}/{side}"


def duel_studies(storage: BaseStorage, duel: str) -> list[str]:
    """Names of the studies of ``duel`` in ``storage``."""
    prefix = f"{duel}/r"
    return sorted(
        s.study_name for s in storage.get_all_studies() if s.study_name.startswith(prefix)
    )
