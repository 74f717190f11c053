"""Several real processes write to one SQLite file at once: nothing is lost or doubled."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from embedloop.store import FeedbackStore
from embedloop.types import FeedbackEvent, Item

WRITERS = 4
EVENTS = 60


def _writer(url: str, worker: int) -> None:
    store = FeedbackStore(url)
    for n in range(EVENTS):
        sid = store.log_search(f"w{worker} q{n}", [("A", 0.5), ("B", 0.4)], model_version=0)
        store.record_selection(sid, "B", event_id=f"w{worker}-{n}")
        store.record_selection(sid, "B", event_id=f"w{worker}-{n}")  # replay: a no-op
        if n % 10 == 0:
            store.record_feedback([FeedbackEvent(f"ext {worker} {n}", ["A", "B"], ["A"], event_id=f"x{worker}-{n}")])
    store.close()


@pytest.mark.slow
def test_concurrent_processes_lose_nothing(db_url: str):
    url = db_url
    FeedbackStore(url).upsert_items([Item("A", "alpha"), Item("B", "beta")])
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = FeedbackStore(url)
    external = WRITERS * len(range(0, EVENTS, 10))
    assert store.count_selections() == WRITERS * EVENTS + external
    assert store.stats()["searches"] == WRITERS * EVENTS + external


def _migrator(url: str) -> None:
    FeedbackStore(url).close()


@pytest.mark.slow
def test_concurrent_first_open_migrates_once(db_url: str):
    url = db_url
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_migrator, args=(url,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert FeedbackStore(url).count_items() == 0
