"""Named lease locks in the feedback store: single-flight training across processes.

A lease is one row of the ``locks`` table: ``name``, ``owner``, ``acquired_at``
and ``expires_at``. Whoever holds an unexpired lease owns the lock; an expired
lease (its holder crashed or hung) can be taken over by anyone. Every
operation is one transaction and works the same on SQLite and PostgreSQL:

* SQLite: every write transaction starts with ``BEGIN IMMEDIATE``, so lock
  operations are serialised by the database file itself.
* PostgreSQL: the take-over is a conditional ``UPDATE`` (concurrent updates of
  one row re-check the condition after the first commits) and a first insert
  races on the primary key; the loser sees an ``IntegrityError``.

Expiry compares wall-clock times taken by the processes, so hosts sharing a
PostgreSQL database should keep their clocks in sync (NTP); the lease length
should dwarf any skew.

>>> with training_lock(loop.store):
...     loop.fine_tune()
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from embedloop.errors import InvalidInputError, TrainingInProgressError
from embedloop.store.schema import locks
from embedloop.store.store import FeedbackStore, now

logger = logging.getLogger(__name__)

#: Name of the lock every fine-tuning cycle holds.
TRAINING_LOCK = "training"
#: Default lease length. The holder renews it every third of this while alive (a heartbeat), so a holder
#: that died on another host blocks others for at most this long; on this host, at once (its pid is gone).
DEFAULT_TTL_SECONDS = 30.0
#: The lock held around every switch of the active version (promotion, rollback, prune).
SWITCH_LOCK = "switch"
SWITCH_TTL_SECONDS = 60.0


def default_owner(role: str = "trainer") -> str:
    """A unique, human-readable owner id: role, host, pid and a random suffix."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _check(name: Any, owner: Any, ttl_seconds: Any = 1.0) -> None:
    if not isinstance(name, str) or not name or len(name) > 128:
        raise InvalidInputError(f"lock name must be a 1-128 character string, got {name!r}.", field="name")
    if not isinstance(owner, str) or not owner or len(owner) > 256:
        raise InvalidInputError(f"lock owner must be a 1-256 character string, got {owner!r}.", field="owner")
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int | float) or not ttl_seconds > 0:
        raise InvalidInputError(f"ttl_seconds must be a positive number, got {ttl_seconds!r}.", field="ttl_seconds")


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def acquire(store: FeedbackStore, name: str, owner: str, ttl_seconds: float) -> bool:
    """Take lock ``name`` for ``ttl_seconds`` if it is free, expired, or already ``owner``'s.

    Returns ``True`` when ``owner`` now holds the lease, ``False`` when someone
    else holds an unexpired one. One transaction.
    """
    _check(name, owner, ttl_seconds)
    stamp = now()
    values = {"owner": owner, "acquired_at": stamp, "expires_at": stamp + timedelta(seconds=ttl_seconds)}
    try:
        with store.engine.begin() as conn:
            taken = conn.execute(
                update(locks)
                .where(locks.c.name == name, or_(locks.c.expires_at <= stamp, locks.c.owner == owner))
                .values(**values)
            ).rowcount
            if taken:
                return True
            current = conn.scalar(select(locks.c.owner).where(locks.c.name == name))
            if current is not None:
                if not holder_is_dead(current):
                    return False
                # the holder was a process on this host that no longer exists: its lease is void now
                taken = conn.execute(
                    update(locks).where(locks.c.name == name, locks.c.owner == current).values(**values)
                ).rowcount
                if taken:
                    logger.warning("Took over the %r lock from %s, a process that no longer exists.", name, current)
                return bool(taken)
            conn.execute(insert(locks).values(name=name, **values))
            return True
    except IntegrityError:  # another process inserted the row first (PostgreSQL)
        return False


def holder_is_dead(owner: str) -> bool:
    """Whether ``owner`` (``role@host:pid:suffix``) names a process on this host that no longer runs.

    Holders on other hosts cannot be checked from here: their lease (short, renewed every third of it)
    ends on its own.
    """
    _role, _, rest = owner.partition("@")
    host, _, tail = rest.partition(":")
    pid_text = tail.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def break_lock(store: FeedbackStore, name: str = TRAINING_LOCK) -> dict[str, Any] | None:
    """Remove lock ``name`` whoever holds it (an operator's last resort); returns the lease that was removed."""
    info = holder(store, name)
    if info is not None:
        with store.engine.begin() as conn:
            conn.execute(delete(locks).where(locks.c.name == name, locks.c.owner == info["owner"]))
        logger.warning("The %r lock held by %s was broken by an operator.", name, info["owner"])
    return info


class LockLostError(TrainingInProgressError):
    """This process's lease was taken over: it must not take irreversible steps any more."""


def fence(lease: Lease | None) -> None:
    """Raise :class:`LockLostError` unless ``lease`` is still held (call before every irreversible step)."""
    if lease is None:
        return
    if lease.lost.is_set() or not renew(lease.store, lease.name, lease.owner, lease.ttl_seconds):
        lease.lost.set()
        raise LockLostError(
            f"The {lease.name!r} lock held by {lease.owner} was lost (its lease expired and was taken over); "
            "this cycle stops before changing anything. The next cycle starts over."
        )


@contextmanager
def switch_lock(store: FeedbackStore, wait_seconds: float = 30.0) -> Iterator[Lease]:
    """Hold the short ``switch`` lock: promotions, rollbacks and prunes never interleave.

    Waits up to ``wait_seconds`` for another switch to finish, then raises
    :class:`~embedloop.errors.TrainingInProgressError`.
    """
    owner = default_owner("switch")
    deadline = time.monotonic() + wait_seconds
    while not acquire(store, SWITCH_LOCK, owner, SWITCH_TTL_SECONDS):
        if time.monotonic() >= deadline:
            info = holder(store, SWITCH_LOCK) or {}
            raise TrainingInProgressError(
                f"Another model switch is in progress (held by {info.get('owner')}); try again in a moment."
            )
        time.sleep(0.1 + 0.1 * random.random())  # jittered: pollers must not starve the holder's writes
    try:
        yield Lease(store, SWITCH_LOCK, owner, SWITCH_TTL_SECONDS)
    finally:
        try:
            release(store, SWITCH_LOCK, owner)
        except Exception as exc:
            logger.error("Could not release the switch lock (%s); it expires on its own.", exc)


def renew(store: FeedbackStore, name: str, owner: str, ttl_seconds: float) -> bool:
    """Extend ``owner``'s lease to ``ttl_seconds`` from now; ``False`` if it is no longer theirs."""
    _check(name, owner, ttl_seconds)
    stamp = now()
    with store.engine.begin() as conn:
        result = conn.execute(
            update(locks)
            .where(locks.c.name == name, locks.c.owner == owner)
            .values(expires_at=stamp + timedelta(seconds=ttl_seconds))
        )
        return bool(result.rowcount)


def release(store: FeedbackStore, name: str, owner: str) -> bool:
    """Give the lease up; ``False`` when ``owner`` did not hold it (e.g. it expired and was taken over)."""
    _check(name, owner)
    with store.engine.begin() as conn:
        return bool(conn.execute(delete(locks).where(locks.c.name == name, locks.c.owner == owner)).rowcount)


def holder(store: FeedbackStore, name: str = TRAINING_LOCK) -> dict[str, Any] | None:
    """Who holds lock ``name``: ``owner``, ``acquired_at``, ``expires_at`` (ISO, UTC), ``expired``; or ``None``."""
    with store.engine.connect() as conn:
        row = conn.execute(select(locks).where(locks.c.name == name)).first()
    if row is None:
        return None
    expires = _aware(row.expires_at)
    return {
        "owner": row.owner,
        "acquired_at": _aware(row.acquired_at).isoformat(),
        "expires_at": expires.isoformat(),
        "expired": expires <= now(),
    }


@dataclass
class Lease:
    """A held lock. ``lost`` is set if renewal found the lease taken over by someone else."""

    store: FeedbackStore
    name: str
    owner: str
    ttl_seconds: float
    lost: threading.Event = field(default_factory=threading.Event)


class _Renewer(threading.Thread):
    """Renews a lease every ``ttl / 3`` seconds until stopped, so long work keeps its lock."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(name=f"lease-renewer-{lease.name}", daemon=True)
        self.lease = lease
        self.stopped = threading.Event()

    def run(self) -> None:
        lease = self.lease
        interval = max(lease.ttl_seconds / 3.0, 0.01)
        while not self.stopped.wait(interval):
            try:
                if not renew(lease.store, lease.name, lease.owner, lease.ttl_seconds):
                    logger.error(
                        "Lost the %r lock held by %s: its lease expired and was taken over.", lease.name, lease.owner
                    )
                    lease.lost.set()
                    return
            except Exception as exc:  # a database hiccup: keep trying until the lease runs out
                logger.warning("Could not renew the %r lock (%s); retrying.", lease.name, exc)


@dataclass
class _Held:
    lease: Lease
    thread: int
    depth: int = 1


#: Leases held by this process, by (database URL, lock name): makes nesting on one thread re-entrant.
_held: dict[tuple[str, str], _Held] = {}
_held_guard = threading.Lock()


def _busy_message(store: FeedbackStore, name: str) -> str:
    info = holder(store, name)
    if info is None:
        return f"The {name!r} lock was released a moment ago by another process; try again."
    return (
        f"Fine-tuning is already in progress: the {name!r} lock is held by {info['owner']} "
        f"(since {info['acquired_at']}) until {info['expires_at']} unless renewed. "
        "Wait for that cycle to finish; a crashed holder's lease expires on its own."
    )


@contextmanager
def training_lock(
    store: FeedbackStore,
    owner: str | None = None,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    *,
    name: str = TRAINING_LOCK,
) -> Iterator[Lease]:
    """Hold lock ``name`` for the duration of the block, renewing its lease in the background.

    Raises :class:`~embedloop.errors.TrainingInProgressError` (naming the holder
    and the lease's end) when another owner holds it. Nesting on the same
    thread is re-entrant: the inner block reuses the outer lease, so a caller
    may wrap ``loop.fine_tune()`` even when the cycle takes the lock itself.
    If the process dies, the lease simply expires after ``ttl_seconds``.
    """
    key = (store.url, name)
    me = threading.get_ident()
    with _held_guard:
        held = _held.get(key)
        if held is not None and held.thread == me:
            held.depth += 1
        else:
            held = None
    if held is not None:
        try:
            yield held.lease
        finally:
            with _held_guard:
                held.depth -= 1
        return

    owner = owner or default_owner()
    if not acquire(store, name, owner, ttl_seconds):
        raise TrainingInProgressError(_busy_message(store, name))
    lease = Lease(store, name, owner, float(ttl_seconds))
    renewer = _Renewer(lease)
    renewer.start()
    with _held_guard:
        _held[key] = _Held(lease, me)
    logger.info("Acquired the %r lock as %s", name, owner)
    try:
        yield lease
    finally:
        with _held_guard:
            _held.pop(key, None)
        renewer.stopped.set()
        renewer.join()
        try:
            if not release(store, name, owner):
                logger.warning("The %r lock was no longer held by %s at release.", name, owner)
        except Exception as exc:
            logger.error("Could not release the %r lock (%s); it expires on its own.", name, exc)
