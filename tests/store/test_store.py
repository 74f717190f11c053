from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import inspect

from embedloop.errors import InvalidInputError, NotFoundError, NotShownError, StorageError
from embedloop.store import FeedbackStore
from embedloop.store.database import head_revision
from embedloop.store.schema import metadata
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
