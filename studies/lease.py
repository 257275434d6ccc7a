"""One driver per duel: a lease kept in the duel's own Optuna storage.

Two drivers on one duel would corrupt each other: a second one started with ``--resume``
marks the first one's running trials failed and runs them again. So before any trial starts,
``arena duel`` takes the duel's lease, holds it with a heartbeat while it runs, and gives it
back on every exit it handles (the end, Ctrl-C, an error).

The lease is an Optuna study named ``<duel>/lease`` (never taken for one of the duel's
round studies, ``<duel>/rNN/<side>``) whose user attributes name its holder: ``owner`` (a
random id per run), ``host``, ``pid``, ``user``, ``started`` and ``heartbeat`` (Unix times)
and ``stale_after`` (seconds). The storage is the only medium that SQLite, the file journal and
a database server share, on one machine or across a cluster, and creating a study is atomic
on all of them (``DuplicatedStudyError`` for an existing name): of two drivers that start
together, exactly one creates the lease, and the other is refused in one line that names the
holder and since when it holds it.

A lease is *stale* at once when its holder ran on this host and its process is gone, and
otherwise when its heartbeat (every :data:`HEARTBEAT_S` seconds) is older than
:data:`MISSED_BEATS` beats (60 seconds). Heartbeats of another host are compared with this
host's clock, so a cluster's clocks must agree to within seconds (NTP). Only ``--resume`` takes
over a stale lease; a run without it is refused and told to resume.

Taking over: the taker first creates a *claim*, ``<duel>/lease/takeover-<owner>``, named after
the stale holder, so that of two drivers taking over the same lease only one proceeds; under
the claim it checks that the lease is still that holder's, deletes it, creates its own, and
only then deletes the claim. Leases are deleted by study id: PostgreSQL and the journal never
reuse an id, and SQLite cannot reuse the stale lease's id while the (newer) claim exists.

The lease also records the session folder of a local Ray instance its holder starts
(``ray_session``); a taker learns it from :attr:`Lease.took_over`, so that the duel can stop
what a killed holder's Ray left running (:func:`arena.cell.runner.reap_session`).

A holder whose heartbeat finds that its lease is gone or another's (it missed its beats, say
on a cut network, and was taken over) stops its own run as Ctrl-C would
(:func:`_thread.interrupt_main`), and :func:`hold` turns that stop into :class:`LeaseLost`.
"""

from __future__ import annotations

import _thread
import contextlib
import getpass
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage
from optuna.study import StudyDirection

from arena.core.processes import pid_alive
from studies.storage import open_storage

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0  # seconds between a holder's heartbeats
MISSED_BEATS = 4  # a lease whose heartbeat is this many beats old is stale (60 s)
BARE_GRACE_S = 5.0  # how long a lease or claim may stay without its holder's attributes
TAKE_TIMEOUT_S = 30.0  # how long a driver keeps trying while others take the lease too
POLL_S = 0.1


class LeaseError(RuntimeError):
    """The duel's lease cannot be taken or was lost; the message is one line."""


class LeaseHeld(LeaseError):
    """Another driver holds the duel's lease (or held it and stopped, and this run did not
    ask to resume)."""


class LeaseLost(LeaseError):
    """This driver's lease was taken over while it ran."""


def lease_name(duel: str) -> str:
    """The lease study's name: ``<duel>/lease``."""
    return f"{duel}/lease"


def claim_name(duel: str, holder: str) -> str:
    """The study that a driver taking over ``holder``'s stale lease creates first."""
    return f"{duel}/lease/takeover-{holder}"


@dataclass(frozen=True)
class Driver:
    """Who takes a lease: a random id for this run, the host, the process and the user."""

    owner: str
    host: str
    pid: int
    user: str

    @classmethod
    def here(cls) -> Driver:
        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name (a container without one): not needed
            user = "?"
        return cls(uuid.uuid4().hex, socket.gethostname(), os.getpid(), user)


@dataclass(frozen=True)
class Record:
    """A lease or claim as read from the storage. ``owner`` is empty while its taker has not
    yet written its attributes (they are written one by one, ``owner`` last)."""

    study_id: int
    owner: str
    host: str
    pid: int
    user: str
    started: float
    heartbeat: float
    stale_after: float
    ray_session: str = ""  # the local Ray instance the holder started, if it started one

    @classmethod
    def read(cls, storage: BaseStorage, name: str) -> Record | None:
        """The study ``name``'s record, ``None`` if there is no such study."""
        try:
            study_id = storage.get_study_id_from_name(name)
            attrs = storage.get_study_user_attrs(study_id)
        except KeyError:
            return None
        return cls(
            study_id,
            str(attrs.get("owner", "")),
            str(attrs.get("host", "")),
            int(attrs.get("pid", 0)),
            str(attrs.get("user", "")),
            float(attrs.get("started", 0.0)),
            float(attrs.get("heartbeat", 0.0)),
            float(attrs.get("stale_after", HEARTBEAT_S * MISSED_BEATS)),
            str(attrs.get("ray_session", "")),
        )

    def stale(self, now: float | None = None) -> str | None:
        """Why the holder is taken to have stopped, or ``None`` while it is live."""
        if self.host == socket.gethostname() and not pid_alive(self.pid):
            return f"its process {self.pid} on {self.host} is gone"
        age = (time.time() if now is None else now) - self.heartbeat
        if age > self.stale_after:
            return f"no heartbeat for {age:.0f} s"
        return None

    def who(self) -> str:
        """``user@host (pid N) since 2025-01-31 12:00:00 UTC``."""
        if not self.host:
            return "a driver that never finished taking the lease"
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started))
        return f"{self.user}@{self.host} (pid {self.pid}) since {since}"


def _stop_main() -> None:
    """Stop this process's run as Ctrl-C would (Ray Tune, if it is running trials, stops them
    first); where SIGINT is not handled in Python (a background job ignores it), end the
    process."""
    if callable(signal.getsignal(signal.SIGINT)):
        _thread.interrupt_main()
    else:
        os.kill(os.getpid(), signal.SIGTERM)


def _create(storage: BaseStorage, name: str, attrs: dict[str, Any]) -> int | None:
    """Create the study ``name`` with ``attrs`` (``owner`` written last); ``None`` if it exists."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created" per run
    try:
        study_id = storage.create_new_study([StudyDirection.MINIMIZE], name)
    except DuplicatedStudyError:
        return None
    finally:
        optuna.logging.set_verbosity(verbosity)
    for key, value in attrs.items():
        if key != "owner":
            storage.set_study_user_attr(study_id, key, value)
    storage.set_study_user_attr(study_id, "owner", attrs["owner"])
    return study_id


def _complete(storage: BaseStorage, name: str) -> Record | None:
    """The record of ``name``, waiting up to :data:`BARE_GRACE_S` for its taker to write it;
    a record still bare after that has lost its taker (``owner`` stays empty)."""
    deadline = time.monotonic() + BARE_GRACE_S
    record = Record.read(storage, name)
    while record is not None and not record.owner and time.monotonic() < deadline:
        time.sleep(POLL_S)
        record = Record.read(storage, name)
    return record


def _stale(record: Record) -> str | None:
    return record.stale() if record.owner else "its holder's attributes were never written"


@dataclass
class Lease:
    """A held lease: :meth:`start` its heartbeat, :meth:`release` it at the end."""

    url: str
    duel: str
    driver: Driver
    study_id: int
    interval_s: float = HEARTBEAT_S
    on_lost: Callable[[], None] = field(default=lambda: _stop_main(), repr=False)
    lost: str | None = None  # why, once a heartbeat finds the lease gone or another's
    took_over: Record | None = None  # the stale lease this one replaced, if it replaced one
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _beating: threading.Thread | None = field(default=None, init=False, repr=False)

    @property
    def owner(self) -> str:
        return self.driver.owner

    def note_ray_session(self, session_dir: str) -> None:
        """Record the local Ray instance this driver started (its session folder), so that the
        driver that takes over after this one was killed can stop what it left running."""
        storage = open_storage(self.url)
        storage.set_study_user_attr(self.study_id, "ray_session", session_dir)

    def start(self) -> None:
        """Beat every ``interval_s`` seconds in a daemon thread until :meth:`release`."""
        self._beating = threading.Thread(target=self._run, name="duel-lease", daemon=True)
        self._beating.start()

    def _run(self) -> None:
        storage: BaseStorage | None = None
        while not self._stop.wait(self.interval_s):
            if self.lost is not None:  # again each beat until the run stops: a SIGINT handler
                self.on_lost()  # that Ray Tune left behind swallows the first one
                continue
            try:
                storage = storage or open_storage(self.url)
                self.beat(storage)
            except Exception as exc:  # noqa: BLE001 - a storage hiccup: the next beat tries again
                log.warning("the lease of duel %s missed a heartbeat: %s", self.duel, exc)

    def beat(self, storage: BaseStorage) -> bool:
        """Write the heartbeat if the lease is still this driver's; otherwise record who holds
        it, call ``on_lost`` and return ``False``."""
        current = Record.read(storage, lease_name(self.duel))
        if current is None or (current.study_id, current.owner) != (self.study_id, self.owner):
            self.lost = (
                f"this driver's lease was taken over by {current.who()}"
                if current is not None and current.owner
                else "this driver's lease was deleted while it ran"
            )
            log.error("duel %s: %s; this driver stops", self.duel, self.lost)
            self.on_lost()
            return False
        storage.set_study_user_attr(self.study_id, "heartbeat", time.time())
        return True

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still this driver's."""
        self._stop.set()
        if self._beating is not None:
            self._beating.join(timeout=10)
        try:
            storage = open_storage(self.url)
            current = Record.read(storage, lease_name(self.duel))
            if current is not None and (current.study_id, current.owner) == (
                self.study_id,
                self.owner,
            ):
                with contextlib.suppress(KeyError):  # gone already
                    storage.delete_study(self.study_id)
        except Exception as exc:  # noqa: BLE001 - never hide the error the run ended with
            log.warning("could not release the lease of duel %s: %s", self.duel, exc)


def acquire(
    url: str,
    duel: str,
    *,
    resume: bool,
    driver: Driver | None = None,
    interval_s: float = HEARTBEAT_S,
    misses: int = MISSED_BEATS,
) -> Lease:
    """Take the lease of ``duel`` in the storage at ``url`` (see the module docstring);
    :class:`LeaseHeld` names the holder when another driver has it."""
    driver = driver or Driver.here()
    storage = open_storage(url)
    name = lease_name(duel)
    deadline = time.monotonic() + TAKE_TIMEOUT_S

    def attrs() -> dict[str, Any]:
        now = time.time()
        return {
            "host": driver.host,
            "pid": driver.pid,
            "user": driver.user,
            "started": now,
            "heartbeat": now,
            "stale_after": interval_s * misses,
            "owner": driver.owner,
        }

    while True:
        study_id = _create(storage, name, attrs())
        if study_id is not None:
            return Lease(url, duel, driver, study_id, interval_s)
        holder = _complete(storage, name)
        if holder is None:  # released meanwhile: try again
            continue
        reason = _stale(holder)
        if reason is None:
            raise LeaseHeld(
                f"duel {duel} is already being run by {holder.who()}; wait for that driver to "
                "finish or stop it (one driver per duel)"
            )
        if not resume:
            raise LeaseHeld(
                f"duel {duel} was being run by {holder.who()}, which stopped ({reason}); "
                "continue it with --resume"
            )
        study_id = _take_over(storage, duel, holder, attrs())
        if study_id is not None:
            log.warning("duel %s: took over the lease of %s (%s)", duel, holder.who(), reason)
            return Lease(url, duel, driver, study_id, interval_s, took_over=holder)
        if time.monotonic() > deadline:
            raise LeaseHeld(
                f"could not take over the lease of duel {duel} within {TAKE_TIMEOUT_S:.0f} s: "
                "other drivers are taking it at the same time"
            )
        time.sleep(POLL_S)


def _take_over(storage: BaseStorage, duel: str, stale: Record, attrs: dict[str, Any]) -> int | None:
    """Replace the stale lease ``stale`` with a new one of ``attrs``, under a claim; ``None``
    if another driver is taking it over or took it first."""
    claim = claim_name(duel, stale.owner or f"study{stale.study_id}")
    claim_id = _create(storage, claim, attrs)
    if claim_id is None:  # another taker's claim; one that stopped halfway is cleared
        other = _complete(storage, claim)
        if other is not None and _stale(other) is not None:
            with contextlib.suppress(KeyError):
                storage.delete_study(other.study_id)
        return None
    try:
        current = Record.read(storage, lease_name(duel))
        if current is None or (current.study_id, current.owner) != (stale.study_id, stale.owner):
            return None  # released or taken over meanwhile: judge the lease again
        try:
            storage.delete_study(stale.study_id)
        except KeyError:
            return None
        return _create(storage, lease_name(duel), attrs)
    finally:
        with contextlib.suppress(KeyError):
            storage.delete_study(claim_id)


@contextlib.contextmanager
def hold(
    url: str,
    duel: str,
    *,
    resume: bool,
    interval_s: float = HEARTBEAT_S,
    misses: int = MISSED_BEATS,
) -> Iterator[Lease]:
    """Hold the lease of ``duel`` for the body: taken, beating, and released on every exit.
    A run stopped because its lease was taken over raises :class:`LeaseLost`."""
    lease = acquire(url, duel, resume=resume, interval_s=interval_s, misses=misses)
    lease.start()
    try:
        yield lease
    except KeyboardInterrupt:
        if lease.lost is not None:
            raise LeaseLost(f"duel {duel}: {lease.lost}") from None
        raise
    finally:
        lease.release()
