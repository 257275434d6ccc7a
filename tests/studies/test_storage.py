"""Storage URLs: SQLite, the file journal, database servers; one-line errors, no passwords."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from arena.duels.run import absolute_storage
from studies.storage import (
    CONNECT_TIMEOUT_S,
    StorageError,
    _engine_kwargs,
    check_writable,
    duel_studies,
    journal_path,
    open_storage,
    redact,
    sqlite_path,
    study_name,
)


def _round_trip(url: str) -> None:
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name=study_name("d", "attacker", 1))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    again = open_storage(url, create=False)
    assert duel_studies(again, "d") == ["d/r01/attacker"]
    assert len(optuna.load_study(study_name="d/r01/attacker", storage=again).trials) == 2


def test_sqlite_and_both_journal_spellings_round_trip(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'sub' / 'a.db'}")  # the folder is made
    _round_trip(f"journal://{tmp_path / 'j' / 'a.log'}")
    _round_trip(str(tmp_path / "b.log"))
    assert (tmp_path / "j" / "a.log").is_file() and (tmp_path / "b.log").is_file()


def test_url_kinds() -> None:
    assert journal_path("journal:///x/a.log") == "/x/a.log"
    assert journal_path("runs/a.log") == "runs/a.log"
    assert journal_path("sqlite:///a.log") is None
    assert sqlite_path("sqlite:///runs/a.db") == "runs/a.db"
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql://h/db") is None
    assert absolute_storage("sqlite:///runs/a.db").startswith("sqlite:////")
    assert absolute_storage("journal://runs/a.log").startswith("journal:///")
    assert absolute_storage("postgresql://h/db") == "postgresql://h/db"


def test_servers_get_a_connect_timeout_and_files_do_not() -> None:
    for url in ("postgresql://u@h/db", "postgresql+psycopg://u@h/db", "mysql+pymysql://u@h/d"):
        kwargs = _engine_kwargs(url)
        assert kwargs["connect_args"]["connect_timeout"] == CONNECT_TIMEOUT_S
        assert kwargs["pool_pre_ping"] is True
    assert _engine_kwargs("sqlite:///a.db") == {}


def test_redact_hides_passwords_only() -> None:
    assert (
        redact("postgresql://arena:s3cret@db:5432/arena") == "postgresql://arena:***@db:5432/arena"
    )
    assert redact("postgresql://arena@db/arena") == "postgresql://arena@db/arena"
    assert redact("sqlite:///runs/a.db") == "sqlite:///runs/a.db"


def _one_line(url: str, **kwargs: bool) -> str:
    with pytest.raises(StorageError) as caught:
        open_storage(url, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_errors_are_one_line_and_say_what_to_do(tmp_path: Path) -> None:
    message = _one_line("nosuchdb://x")
    assert "nosuchdb://x" in message and "--storage" in message
    message = _one_line(f"sqlite:///{tmp_path / 'none.db'}", create=False)
    assert "no Optuna storage" in message and "run a duel first" in message
    assert not (tmp_path / "none.db").exists()
    # nothing listens on port 1: refused at once (or, without the driver, the extra to install)
    message = _one_line("postgresql://arena:s3cret@127.0.0.1:1/arena")
    assert "s3cret" not in message and "arena:***@127.0.0.1:1" in message
    assert "Connection refused" in message or "arena[postgres]" in message


def test_a_storage_that_cannot_be_written_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    storage = open_storage(url)
    check_writable(storage, url)  # writable: the probe study is made and removed
    assert storage.get_all_studies() == []

    def read_only(*args: object, **kwargs: object) -> int:
        raise RuntimeError("(sqlite3.OperationalError) attempt to write a readonly database\n[SQL]")

    monkeypatch.setattr(storage, "create_new_study", read_only)
    with pytest.raises(StorageError, match="cannot be written .*readonly database.*--storage") as e:
        check_writable(storage, url)
    assert "\n" not in str(e.value)
