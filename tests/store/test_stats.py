"""Operator read queries (store/stats.py) on SQLite and PostgreSQL: run pages and the feedback timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from embedloop.errors import InvalidInputError
from embedloop.store import FeedbackStore
from embedloop.store.runs import finish_run, start_run
from embedloop.store.schema import searches, selections, training_runs
from embedloop.store.stats import check_count, feedback_timeline, runs_page
from embedloop.types import FeedbackEvent, Item

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def store(db_url: str):
    s = FeedbackStore(db_url)
    s.upsert_items([Item("A", "alpha"), Item("B", "beta"), Item("C", "gamma"), Item("X", HOSTILE)])
    yield s
    s.close()


def _age(store: FeedbackStore, search_ids: list[str], days: float) -> None:
    """Move searches (and their selections) ``days`` into the past."""
    when = datetime.now(UTC) - timedelta(days=days)
    with store.engine.begin() as conn:
        conn.execute(update(searches).where(searches.c.id.in_(search_ids)).values(created_at=when))
        conn.execute(update(selections).where(selections.c.search_id.in_(search_ids)).values(created_at=when))


def test_runs_page_is_newest_first_with_total_duration_and_timings(store: FeedbackStore):
    ids = []
    for n in range(5):
        run = start_run(store, parent_version=n, from_seq=10 * n, to_seq=10 * n + 10)
        finish_run(
            store,
            run,
            status="promoted" if n % 2 else "rejected",
            version=n + 1,
            metrics={
                "active": {"triplet_accuracy": 0.7},
                "candidate": {"triplet_accuracy": 0.8},
                "timings": {"train_seconds": 1.5},
            },
            reasons=[f"reason {n}"],
        )
        ids.append(run)
    started = datetime.now(UTC) - timedelta(minutes=10)
    with store.engine.begin() as conn:
        conn.execute(
            update(training_runs)
            .where(training_runs.c.id == ids[3])
            .values(started_at=started, finished_at=started + timedelta(seconds=90.5))
        )
    page = runs_page(store, limit=2, offset=1)
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [r["id"] for r in page["runs"]] == [ids[3], ids[2]]
    first = page["runs"][0]
    assert first["duration_seconds"] == pytest.approx(90.5)
    assert first["timings"] == {"train_seconds": 1.5}
    assert first["reasons"] == ["reason 3"]
    assert first["metrics"]["candidate"]["triplet_accuracy"] == 0.8
    assert first["feedback_from_seq"] == 30 and first["feedback_to_seq"] == 40
    assert datetime.fromisoformat(first["started_at"]) == started
    assert runs_page(store, limit=50, offset=5)["runs"] == []


def test_running_run_has_no_duration(store: FeedbackStore):
    start_run(store, parent_version=0, from_seq=0, to_seq=3)
    (run,) = runs_page(store)["runs"]
    assert run["status"] == "running"
    assert run["duration_seconds"] is None and run["finished_at"] is None and run["timings"] is None


def test_feedback_timeline_counts_per_day_click_through_and_tops(store: FeedbackStore):
    today = [
        FeedbackEvent("apple", ["A", "B", "C"], ["A"]),
        FeedbackEvent("apple", ["A", "B", "C"], ["A", "B"]),
        FeedbackEvent("nothing here", ["A", "B"], []),
        FeedbackEvent("nothing here", ["B", "C"], []),
        FeedbackEvent("hostile", ["X", "A"], ["X"]),
    ]
    store.record_feedback(today)
    two_days = [
        sid
        for sid, _ in store.record_feedback(
            [FeedbackEvent("beta", ["B", "C"], ["B"]), FeedbackEvent("rare", ["C"], [])]
        )
    ]
    _age(store, two_days, 2)
    old = [
        sid
        for sid, _ in store.record_feedback(
            [FeedbackEvent("ancient", ["A"], ["A"]), FeedbackEvent("ancient", ["A"], [])]
        )
    ]
    _age(store, old, 40)

    data = feedback_timeline(store, days=30)
    days = data["days"]
    assert len(days) == 30
    assert days[-1]["date"] == datetime.now(UTC).strftime("%Y-%m-%d")
    assert [d["date"] for d in days] == sorted(d["date"] for d in days)
    last = days[-1]
    assert (last["searches"], last["searches_with_selection"], last["selections"]) == (5, 3, 4)
    assert last["click_through"] == pytest.approx(3 / 5)
    two = days[-3]
    assert (two["searches"], two["searches_with_selection"], two["selections"]) == (2, 1, 1)
    assert all(d["searches"] == 0 and d["click_through"] is None for d in days[:-3])
    assert data["totals"] == {
        "searches": 7,
        "searches_with_selection": 4,
        "selections": 5,
        "click_through": pytest.approx(4 / 7),
    }
    # the 40-day-old "ancient" searches are outside the window
    assert data["top_unselected_queries"] == [
        {"query": "nothing here", "searches": 2},
        {"query": "rare", "searches": 1},
    ]
    top = data["top_selected_items"]
    assert top[0] == {"item_id": "A", "text": "alpha", "selections": 2}
    assert {"item_id": "X", "text": HOSTILE, "selections": 1} in top
    assert sum(t["selections"] for t in top) == 5

    wide = feedback_timeline(store, days=60)
    assert wide["totals"]["searches"] == 9 and wide["top_unselected_queries"][0] == {
        "query": "nothing here",
        "searches": 2,
    }
    assert {"query": "ancient", "searches": 1} in wide["top_unselected_queries"]


def test_feedback_timeline_of_an_empty_store(store: FeedbackStore):
    data = feedback_timeline(store, days=7)
    assert len(data["days"]) == 7
    assert data["totals"] == {"searches": 0, "searches_with_selection": 0, "selections": 0, "click_through": None}
    assert data["top_unselected_queries"] == [] and data["top_selected_items"] == []


def test_top_lists_are_capped(store: FeedbackStore):
    store.record_feedback([FeedbackEvent(f"query {n}", ["A"], []) for n in range(15)])
    assert len(feedback_timeline(store, days=1, top=10)["top_unselected_queries"]) == 10


@pytest.mark.parametrize("value", [0, -1, 501, True, 1.5, "3", None])
def test_check_count_refuses_bad_values(value):
    with pytest.raises(InvalidInputError) as err:
        check_count(value, "limit", 1, 500)
    assert err.value.field == "limit" and "limit" in str(err.value)


def test_reports_do_not_take_sqlite_write_lock(tmp_path):
    """A long dashboard read must not queue feedback writers (every other SQLite transaction is BEGIN IMMEDIATE)."""
    import sqlite3

    store = FeedbackStore(f"sqlite:///{tmp_path / 'f.db'}")
    store.upsert_items([Item("A", "alpha")])
    store.record_feedback([FeedbackEvent("q", ["A"], ["A"])])
    other = sqlite3.connect(tmp_path / "f.db", timeout=0, isolation_level=None)
    from embedloop.store.database import READ_ONLY

    with store.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        conn.exec_driver_sql("SELECT count(*) FROM selections").all()
        other.execute("BEGIN IMMEDIATE")  # a writer gets the lock while the report's transaction is open
        other.execute("ROLLBACK")
    with store.engine.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM selections").all()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.close()
    store.close()
