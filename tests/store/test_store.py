from __future__ import annotations

import io
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, inspect

from embedloop.errors import InvalidInputError, NotFoundError, NotShownError, StorageError
from embedloop.store import FeedbackStore
from embedloop.store.database import head_revision
from embedloop.store.schema import impressions, metadata, searches, selections
from embedloop.types import FeedbackEvent, Item


@pytest.fixture
def store(db_url: str):
    s = FeedbackStore(db_url)
    s.upsert_items([Item("A", "alpha"), Item("B", "beta"), Item("C", "gamma")])
    yield s
    s.close()


def test_migrations_create_exactly_the_declared_schema(db_url: str):
    s = FeedbackStore(db_url)
    insp = inspect(s.engine)
    tables = set(insp.get_table_names())
    assert set(metadata.tables) <= tables
    assert "alembic_version" in tables
    for name, table in metadata.tables.items():
        assert {c["name"] for c in insp.get_columns(name)} == {c.name for c in table.columns}, name
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head_revision()
        if s.engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    s.close()
    FeedbackStore(db_url).close()  # reopening is a no-op


def test_upsert_tracks_changes(store: FeedbackStore):
    rev = store.catalog_revision()
    assert store.upsert_items([Item("A", "alpha")]) == 0  # unchanged
    assert store.catalog_revision() == rev
    assert store.upsert_items([Item("A", "alpha two"), Item("D", "delta")]) == 2
    rows, newest = store.changes_since(rev)
    assert {r.id for r in rows} == {"A", "D"}
    assert newest > rev
    store.delete_items(["B"])
    rows, _ = store.changes_since(newest)
    assert [(r.id, r.deleted) for r in rows] == [("B", True)]
    assert store.count_items() == 3


def test_delete_unknown_id_deletes_nothing(store: FeedbackStore):
    with pytest.raises(NotFoundError, match="nothing was deleted"):
        store.delete_items(["A", "nope"])
    assert store.count_items() == 3


def test_search_impressions_and_selection(store: FeedbackStore):
    sid = store.log_search("q", [("B", 0.9), ("A", 0.5)], model_version=0)
    sel = store.record_selection(sid, "A", event_id="e1")
    assert (sel.rank, sel.duplicate) == (2, False)
    again = store.record_selection(sid, "A", event_id="e1")
    assert again.duplicate and again.seq == sel.seq
    assert store.count_selections() == 1
    with pytest.raises(InvalidInputError, match="already used"):
        store.record_selection(sid, "B", event_id="e1")
    with pytest.raises(NotShownError, match="was not shown"):
        store.record_selection(sid, "C")
    with pytest.raises(NotFoundError, match="Unknown search_id"):
        store.record_selection("missing", "A")
    assert store.count_selections() == 1


def test_external_feedback_is_all_or_nothing(store: FeedbackStore):
    ok = FeedbackEvent("q1", ["A", "B"], ["B"], event_id="x1")
    bad = FeedbackEvent("q2", ["A", "ZZZ"], ["A"])
    with pytest.raises(NotFoundError, match="ZZZ"):
        store.record_feedback([ok, bad])
    assert store.count_selections() == 0
    ((sid, picked),) = store.record_feedback([ok])
    assert [(p.item_id, p.rank) for p in picked] == [("B", 2)]
    ((sid2, again),) = store.record_feedback([ok])
    assert sid2 == sid and again[0].duplicate
    assert store.count_selections() == 1


def test_count_since_and_export(store: FeedbackStore):
    store.record_feedback([FeedbackEvent("q1", ["A", "B"], ["A"]), FeedbackEvent("q2", ["C"], ["C"])])
    first = store.max_selection_seq()
    store.record_feedback([FeedbackEvent("q3", ["B", "C"], ["C"])])
    assert store.count_selections(after_seq=first) == 1
    buf = io.StringIO()
    assert store.export_feedback(buf) == 3
    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert lines[2]["query"] == "q3"
    assert [s["item_id"] for s in lines[2]["shown"]] == ["B", "C"]
    assert lines[2]["selected"][0]["rank"] == 2
    stats = store.stats()
    assert stats["selections"] == 3 and stats["searches_with_selection"] == 3


def test_bad_url_is_a_clear_error(tmp_path: Path):
    with pytest.raises(StorageError, match="not a database URL"):
        FeedbackStore("::::")


def test_batch_sequence_numbers_follow_event_order(store: FeedbackStore):
    events = [FeedbackEvent(f"q{n}", ["A", "B", "C"], ["C", "A"] if n == 1 else ["B"]) for n in range(3)]
    results = store.record_feedback(events)
    seqs = [s.seq for _, picked in results for s in picked]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert [(s.item_id, s.rank) for s in results[1][1]] == [("C", 3), ("A", 1)]
    stored = {sel[2] for session in store.feedback_sessions() for sel in session.selected}
    assert stored == set(seqs)
    assert store.max_selection_seq() == seqs[-1]


def test_event_id_repeated_within_one_batch_is_stored_once(store: FeedbackStore):
    event = FeedbackEvent("q", ["A", "B"], ["B"], event_id="x")
    (sid, first), (sid2, again) = store.record_feedback([event, event])
    assert sid2 == sid
    assert [(s.item_id, s.duplicate) for s in first] == [("B", False)]
    assert [(s.item_id, s.seq, s.duplicate) for s in again] == [("B", first[0].seq, True)]
    assert store.count_selections() == 1 and store.stats()["searches"] == 1


def test_timestamps_are_stored_as_core_writes_them(store: FeedbackStore):
    before = datetime.now(UTC)
    store.record_feedback([FeedbackEvent("q", ["A"], ["A"])])
    store.log_search("q2", [("B", 0.5)], model_version=0)
    (session,) = store.feedback_sessions()
    created = session.created_at
    assert isinstance(created, datetime)
    assert abs(created.replace(tzinfo=UTC) - before) < timedelta(minutes=5)
    if store.engine.dialect.name == "sqlite":  # the text SQLAlchemy's DateTime writes and parses
        with store.engine.connect() as conn:
            texts = conn.exec_driver_sql(
                "SELECT created_at FROM searches UNION ALL SELECT created_at FROM selections "
                "UNION ALL SELECT updated_at FROM items"
            ).scalars()
            assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", t) for t in texts)


def test_event_id_committed_by_a_concurrent_writer_is_a_replay(store: FeedbackStore):
    """Another transaction holds the same event id uncommitted; ours waits, then sees a replay."""
    other = FeedbackStore(store.url)
    conn = other.engine.connect()
    trans = conn.begin()
    stamp = datetime.now(UTC)
    conn.execute(
        insert(searches).values(
            id="theirs",
            query="q",
            user_id=None,
            model_version=None,
            source="external",
            event_id="race",
            created_at=stamp,
        )
    )
    conn.execute(insert(impressions).values(search_id="theirs", rank=1, item_id="A", score=None))
    conn.execute(
        insert(selections).values(event_id="race:A", search_id="theirs", item_id="A", rank=1, created_at=stamp)
    )
    results: list[Any] = []
    writer = threading.Thread(
        target=lambda: results.append(store.record_feedback([FeedbackEvent("q", ["A"], ["A"], event_id="race")]))
    )
    writer.start()
    time.sleep(1.0)  # let the writer reach its insert (PostgreSQL) or its BEGIN IMMEDIATE (SQLite)
    trans.commit()
    conn.close()
    writer.join(60)
    other.close()
    ((sid, picked),) = results[0]
    assert sid == "theirs"
    assert [(s.event_id, s.duplicate) for s in picked] == [("race:A", True)]
    assert store.count_selections() == 1
