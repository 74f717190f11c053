"""The lease lock: one holder at a time across real processes; expired leases are taken over."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time

import pytest
from sqlalchemy import update

from embedloop.errors import InvalidInputError, TrainingInProgressError
from embedloop.store import FeedbackStore
from embedloop.store.locks import TRAINING_LOCK, acquire, holder, release, renew, training_lock
from embedloop.store.schema import locks


@pytest.fixture
def store(db_url: str):
    """A fresh store on SQLite and on PostgreSQL (the shared ``db_url`` fixture)."""
    s = FeedbackStore(db_url)
    yield s
    s.close()


def test_acquire_release_renew(store):
    assert acquire(store, "job", "a", 30)
    assert not acquire(store, "job", "b", 30)
    assert acquire(store, "job", "a", 30)  # the holder may re-acquire (renews)
    assert renew(store, "job", "a", 30)
    assert not renew(store, "job", "b", 30)
    info = holder(store, "job")
    assert info["owner"] == "a" and not info["expired"]
    assert not release(store, "job", "b")
    assert release(store, "job", "a")
    assert holder(store, "job") is None
    assert acquire(store, "job", "b", 30)


def test_locks_are_independent_by_name(store):
    assert acquire(store, "one", "a", 30)
    assert acquire(store, "two", "b", 30)


def test_expired_lease_is_taken_over(store):
    assert acquire(store, "job", "crashed", 0.2)
    assert not acquire(store, "job", "b", 30)
    time.sleep(0.3)
    assert holder(store, "job")["expired"]
    assert acquire(store, "job", "b", 30)
    assert holder(store, "job")["owner"] == "b"
    assert not renew(store, "job", "crashed", 30)  # the old holder learns it lost the lease
    assert not release(store, "job", "crashed")


@pytest.mark.parametrize(
    ("name", "owner", "ttl", "field"),
    [("", "a", 1, "name"), ("x" * 129, "a", 1, "name"), ("job", "", 1, "owner"), ("job", "a", 0, "ttl_seconds")],
)
def test_bad_arguments_are_refused(store, name, owner, ttl, field):
    with pytest.raises(InvalidInputError) as err:
        acquire(store, name, owner, ttl)
    assert err.value.field == field


def test_training_lock_names_the_holder(store):
    assert acquire(store, TRAINING_LOCK, "trainer-A", 30)
    with pytest.raises(TrainingInProgressError) as err:
        with training_lock(store, owner="trainer-B"):
            pytest.fail("entered a lock someone else holds")
    message = str(err.value)
    assert "trainer-A" in message and "until" in message
    assert err.value.http_status == 409
    assert holder(store)["owner"] == "trainer-A"  # the refused attempt changed nothing


def test_another_thread_is_another_holder(store):
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with training_lock(store, owner="thread-B"):
                pass
        except TrainingInProgressError as exc:
            errors.append(exc)

    with training_lock(store, owner="thread-A"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1 and "thread-A" in str(errors[0])
    assert holder(store) is None  # released on exit


def test_training_lock_is_reentrant_on_one_thread(store):
    with training_lock(store, owner="outer") as outer:
        with training_lock(store) as inner:  # e.g. the cycle taking the lock inside a caller's lock
            assert inner is outer
        assert holder(store)["owner"] == "outer"  # the inner exit did not release it
    assert holder(store) is None


def test_training_lock_renews_a_long_hold(store):
    with training_lock(store, owner="long", ttl_seconds=0.3) as lease:
        deadline = time.monotonic() + 1.0  # over three lease lengths
        while time.monotonic() < deadline:
            assert not acquire(store, TRAINING_LOCK, "intruder", 30)
            time.sleep(0.05)
        assert not lease.lost.is_set()
    assert acquire(store, TRAINING_LOCK, "intruder", 30)


def test_lost_lease_is_flagged(store):
    with training_lock(store, owner="slow", ttl_seconds=0.2) as lease:
        with store.engine.begin() as conn:  # someone took it over (e.g. after a long pause)
            conn.execute(update(locks).where(locks.c.name == TRAINING_LOCK).values(owner="thief"))
        assert lease.lost.wait(2.0)
    assert holder(store)["owner"] == "thief"  # our exit did not release the thief's lease


def test_lock_is_released_when_the_block_raises(store):
    with pytest.raises(RuntimeError):
        with training_lock(store, owner="x"):
            raise RuntimeError("training blew up")
    assert holder(store) is None


# --------------------------------------------------------------- real processes
def _contend(url: str, barrier, results, n: int) -> None:  # type: ignore[no-untyped-def]
    store = FeedbackStore(url)
    barrier.wait(60)
    results.put((n, acquire(store, TRAINING_LOCK, f"proc-{n}", 30)))
    store.close()


def _hold_and_crash(url: str, ttl: float, ready) -> None:  # type: ignore[no-untyped-def]
    store = FeedbackStore(url)
    with training_lock(store, owner="doomed", ttl_seconds=ttl):
        ready.set()
        os._exit(0)  # die holding the lock: no release, no cleanup


def _run_contenders(url: str, count: int) -> list[tuple[int, bool]]:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(count), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(url, barrier, results, n)) for n in range(count)]
    for p in procs:
        p.start()
    outcome = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return outcome


def _crash_then_take_over(url: str) -> None:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_and_crash, args=(url, 1.5, ready))
    proc.start()
    assert ready.wait(120)
    proc.join(60)
    store = FeedbackStore(url)
    try:
        assert holder(store)["owner"] == "doomed"
        with pytest.raises(TrainingInProgressError, match="doomed"):
            with training_lock(store, owner="survivor"):
                pass
        deadline = time.monotonic() + 30
        while not acquire(store, TRAINING_LOCK, "survivor", 30):
            assert time.monotonic() < deadline, "the crashed holder's lease never expired"
            time.sleep(0.1)
        assert holder(store)["owner"] == "survivor"
    finally:
        store.close()


@pytest.mark.slow
def test_exactly_one_of_many_processes_acquires(db_url: str):
    FeedbackStore(db_url).close()  # migrate once up front
    outcome = _run_contenders(db_url, 6)
    assert sum(ok for _, ok in outcome) == 1


@pytest.mark.slow
def test_crashed_holder_lease_expires_and_is_taken_over(db_url: str):
    FeedbackStore(db_url).close()
    _crash_then_take_over(db_url)
