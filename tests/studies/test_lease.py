"""The duel's lease on SQLite, the file journal and (with ``ARENA_TEST_POSTGRES_URL``) a
PostgreSQL server: one taker wins, a live holder is named, a stale one is taken over only with
``resume``, a heartbeat keeps a lease live, and racing takers leave exactly one holder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.study import StudyDirection

import studies.lease as lease_module
from studies.lease import (
    Driver,
    Lease,
    LeaseHeld,
    LeaseLost,
    Record,
    acquire,
    claim_name,
    hold,
    lease_name,
)
from studies.storage import duel_studies, open_storage

POSTGRES_ENV = "ARENA_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "journal", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'arena.db'}"
    elif request.param == "journal":
        url = f"journal://{tmp_path / 'arena.log'}"
    else:
        url = os.environ.get(POSTGRES_ENV, "")
        if not url:
            pytest.skip(f"no PostgreSQL server configured: set {POSTGRES_ENV}")
    open_storage(url)  # made once, before any thread or taker races to make it
    return url


@pytest.fixture()
def duel(url: str) -> Iterator[str]:
    """A fresh duel name; its lease studies are deleted afterwards (a server is shared)."""
    name = f"lease-test-{uuid.uuid4().hex[:8]}"
    yield name
    storage = open_storage(url)
    for s in storage.get_all_studies():
        if s.study_name.startswith(lease_name(name)):
            storage.delete_study(s._study_id)


def _elsewhere() -> Driver:
    """A driver on another host (its pid cannot be checked from here)."""
    return Driver(uuid.uuid4().hex, "another-node.cluster", 4242, "someone")


def _dead_here() -> Driver:
    """A driver on this host whose process is gone."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return Driver(uuid.uuid4().hex, socket.gethostname(), proc.pid, "someone")


def _leases(url: str, duel: str) -> list[str]:
    """Names of the lease and claim studies of ``duel``."""
    return sorted(
        s.study_name
        for s in open_storage(url).get_all_studies()
        if s.study_name.startswith(lease_name(duel))
    )


def _holder(url: str, duel: str) -> Record:
    record = Record.read(open_storage(url), lease_name(duel))
    assert record is not None
    return record


def test_a_second_taker_is_refused_in_one_line_naming_the_holder(url: str, duel: str) -> None:
    first = acquire(url, duel, resume=False)
    for resume in (False, True):  # live: --resume does not take it either
        with pytest.raises(LeaseHeld) as refused:
            acquire(url, duel, resume=resume)
        message = str(refused.value)
        assert "\n" not in message and "already being run by" in message
        assert f"@{socket.gethostname()} (pid {os.getpid()}) since " in message
        assert "--resume" not in message
    assert _holder(url, duel).owner == first.owner
    # the lease is not one of the duel's round studies
    assert duel_studies(open_storage(url), duel) == []
    first.release()
    assert _leases(url, duel) == []
    second = acquire(url, duel, resume=False)
    assert _holder(url, duel).owner == second.owner
    second.release()


def test_a_holder_whose_process_is_gone_here_is_stale_at_once(url: str, duel: str) -> None:
    dead = acquire(url, duel, resume=False, driver=_dead_here())
    with pytest.raises(LeaseHeld, match=r"which stopped \(its process \d+ on .* is gone\); "
                       "continue it with --resume"):  # fmt: skip
        acquire(url, duel, resume=False)
    assert _holder(url, duel).owner == dead.owner  # a refusal changes nothing
    taker = acquire(url, duel, resume=True)
    holder = _holder(url, duel)
    assert holder.owner == taker.owner and holder.pid == os.getpid()
    assert _leases(url, duel) == [lease_name(duel)]  # no claim left behind
    dead.release()  # a late release of the old holder leaves the new lease alone
    assert _holder(url, duel).owner == taker.owner
    taker.release()
    assert _leases(url, duel) == []


def test_another_hosts_lease_is_stale_after_missed_heartbeats(url: str, duel: str) -> None:
    # beats long enough that a loaded machine (CI on two busy cores) takes the next step in time
    remote = acquire(url, duel, resume=False, driver=_elsewhere(), interval_s=1.0, misses=2)
    with pytest.raises(LeaseHeld, match="already being run by someone@another-node.cluster"):
        acquire(url, duel, resume=True)  # its pid is not checked: it may be alive there
    time.sleep(2.3)  # more than 2 beats of 1 s, none written
    with pytest.raises(LeaseHeld, match=r"no heartbeat for \d+ s\); continue it with --resume"):
        acquire(url, duel, resume=False)
    taker = acquire(url, duel, resume=True)
    assert _holder(url, duel).owner == taker.owner
    # the old holder's next heartbeat finds the lease gone to another and stops it
    stops: list[bool] = []
    remote.on_lost = lambda: stops.append(True)
    assert not remote.beat(open_storage(url))
    assert stops == [True] and remote.lost is not None
    assert f"taken over by {taker.driver.user}@{socket.gethostname()}" in remote.lost
    remote.release()
    assert _holder(url, duel).owner == taker.owner
    taker.release()


def test_a_heartbeat_keeps_a_lease_live(url: str, duel: str) -> None:
    remote = acquire(url, duel, resume=False, driver=_elsewhere(), interval_s=0.25, misses=8)
    remote.start()
    try:
        first = _holder(url, duel).heartbeat
        time.sleep(2.3)  # more than the 2 s after which it would be stale without beats
        assert _holder(url, duel).heartbeat > first
        with pytest.raises(LeaseHeld, match="already being run"):
            acquire(url, duel, resume=True)
    finally:
        remote.release()
    assert _leases(url, duel) == []


def _race(url: str, duel: str, n: int, resume: bool) -> tuple[list[Lease], list[Exception]]:
    """``n`` threads, each with its own storage connection, take the lease at once."""
    barrier = threading.Barrier(n)
    won: list[Lease] = []
    refused: list[Exception] = []

    def take() -> None:
        barrier.wait()
        try:
            won.append(acquire(url, duel, resume=resume))
        except Exception as exc:  # noqa: BLE001 - collected and checked below
            refused.append(exc)

    threads = [threading.Thread(target=take) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return won, refused


def test_of_racing_takers_exactly_one_wins(url: str, duel: str) -> None:
    won, refused = _race(url, duel, 4, resume=False)
    assert len(won) == 1 and len(refused) == 3, refused
    assert all(isinstance(e, LeaseHeld) for e in refused), refused
    assert _holder(url, duel).owner == won[0].owner
    won[0].release()


def test_of_racing_takers_of_a_stale_lease_exactly_one_wins(url: str, duel: str) -> None:
    stale = acquire(url, duel, resume=False, driver=_dead_here())
    won, refused = _race(url, duel, 4, resume=True)
    assert len(won) == 1 and len(refused) == 3, refused
    assert all(isinstance(e, LeaseHeld) for e in refused), refused
    holder = _holder(url, duel)
    assert holder.owner == won[0].owner != stale.owner
    assert _leases(url, duel) == [lease_name(duel)]
    won[0].release()


def test_hold_releases_on_every_exit(url: str, duel: str) -> None:
    with hold(url, duel, resume=False) as lease:
        assert _holder(url, duel).owner == lease.owner
    assert _leases(url, duel) == []
    for error in (ValueError, KeyboardInterrupt):
        with pytest.raises(error), hold(url, duel, resume=False):
            raise error()
        assert _leases(url, duel) == []


def test_a_run_whose_lease_is_taken_over_stops_with_lease_lost(url: str, duel: str) -> None:
    # as in a driver between two studies: Ray Tune leaves a SIGINT handler behind that only
    # puts the previous one back
    previous = signal.signal(
        signal.SIGINT, lambda *_: signal.signal(signal.SIGINT, signal.default_int_handler)
    )
    try:
        _stopped_by_a_lost_lease(url, duel)
    finally:
        signal.signal(signal.SIGINT, previous)


def _stopped_by_a_lost_lease(url: str, duel: str) -> None:
    with pytest.raises(LeaseLost, match="lease was deleted while it ran"):  # noqa: SIM117
        with hold(url, duel, resume=False, interval_s=0.1) as lease:
            storage = open_storage(url)
            storage.delete_study(storage.get_study_id_from_name(lease_name(duel)))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the next heartbeat interrupts this loop
                time.sleep(0.01)
    assert lease.lost is not None


def test_a_lease_or_claim_left_halfway_does_not_block_a_resume(
    url: str, duel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease_module, "BARE_GRACE_S", 0.3)
    storage = open_storage(url)
    # a taker that died between creating the lease and writing who it is
    storage.create_new_study([StudyDirection.MINIMIZE], lease_name(duel))
    with pytest.raises(LeaseHeld, match="never finished taking the lease.*--resume"):
        acquire(url, duel, resume=False)
    first = acquire(url, duel, resume=True)
    first.release()
    # a driver that died while taking over a stale lease, leaving its claim behind
    dead = acquire(url, duel, resume=False, driver=_dead_here())
    storage.create_new_study([StudyDirection.MINIMIZE], claim_name(duel, dead.owner))
    taker = acquire(url, duel, resume=True)
    assert _holder(url, duel).owner == taker.owner
    assert _leases(url, duel) == [lease_name(duel)]
    taker.release()


def test_the_taker_learns_which_ray_session_the_stale_holder_left(url: str, duel: str) -> None:
    dead = acquire(url, duel, resume=False, driver=_dead_here())
    dead.note_ray_session(f"/tmp/ray/session_x_{dead.driver.pid}")
    assert _holder(url, duel).ray_session == f"/tmp/ray/session_x_{dead.driver.pid}"
    taker = acquire(url, duel, resume=True)
    assert taker.took_over is not None and taker.took_over.pid == dead.driver.pid
    assert taker.took_over.ray_session == f"/tmp/ray/session_x_{dead.driver.pid}"
    assert _holder(url, duel).ray_session == ""  # the new lease starts with none
    taker.release()
