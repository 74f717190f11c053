"""Judgment and review-question persistence on SQLite and PostgreSQL (real databases, no mocks)."""

from __future__ import annotations

import io
import json

import pytest

from embedloop import InvalidInputError, NotFoundError
from embedloop.feedback import persistence as db
from embedloop.store import FeedbackStore
from embedloop.types import Item


@pytest.fixture
def store(db_url: str):
    s = FeedbackStore(db_url)
    s.upsert_items([Item("A", "alpha"), Item("B", "beta"), Item("C", "gamma")])
    yield s
    s.close()


def ask(store: FeedbackStore, query: str = "Greek letters", ids: tuple[str, ...] = ("A", "B")) -> str:
    (qid,) = db.add_questions(
        store,
        [
            {
                "query": query,
                "candidates": [{"item_id": i, "text": i.lower(), "score": 0.5} for i in ids],
                "reason": "tied_scores",
                "reasons": {"tied_scores": 1.0},
                "priority": 1.0,
                "model_version": 0,
                "catalog_revision": store.catalog_revision(),
            }
        ],
    )
    return qid


def test_answer_stores_judgments_and_closes_the_question_once(store: FeedbackStore):
    qid = ask(store)
    assert [q["review_id"] for q in db.questions(store, status=db.OPEN)] == [qid]
    result = db.answer_question(store, qid, ["A"], ["B"], "ann")
    assert [(j["item_id"], j["relevant"]) for j in result["judgments"]] == [("A", True), ("B", False)]
    assert db.questions(store, status=db.OPEN) == []
    (closed,) = db.questions(store, status=db.ANSWERED)
    assert closed["answer"] == {"selected": ["A"], "rejected": ["B"]} and closed["reviewer"] == "ann"
    replay = db.answer_question(store, qid, ["A"], ["B"], "ann")
    assert replay["duplicate"] is True and db.count_judgments(store) == 2
    with pytest.raises(InvalidInputError, match="already answered"):
        db.answer_question(store, qid, ["B"], [], "ann")
    assert db.review_counts(store) == {"open_questions": 0, "judgments": 2}


def test_refused_answers_store_nothing(store: FeedbackStore):
    qid = ask(store)
    with pytest.raises(NotFoundError):
        db.answer_question(store, "missing", ["A"], [])
    with pytest.raises(InvalidInputError, match="not candidates"):
        db.answer_question(store, qid, ["A"], ["C"])
    with pytest.raises(InvalidInputError, match="empty"):
        db.answer_question(store, qid, [], [])
    assert db.count_judgments(store) == 0
    assert [q["status"] for q in db.questions(store)] == [db.OPEN]


def test_newest_label_wins_and_export(store: FeedbackStore):
    db.record_judgment(store, "Greek letters", "A", True, "ann")
    db.record_judgment(store, "greek  LETTERS", "A", False, "bob")
    db.record_judgment(store, "greek letters", "B", True, None)
    assert db.record_judgment(store, "greek letters", "B", True, None).duplicate is True
    labels = db.current_labels(store)
    assert labels["greek letters"][1] == {"A": False, "B": True}
    assert [j.reviewer for j in db.list_judgments(store, reviewer="ann")] == ["ann"]
    assert len(db.list_judgments(store, query="GREEK letters")) == 3
    out = io.StringIO()
    assert db.export_judgments(store, out) == 3
    assert [json.loads(line)["relevant"] for line in out.getvalue().splitlines()] == [True, False, True]
    with pytest.raises(NotFoundError):
        db.record_judgment(store, "greek letters", "Z", True)
    assert db.count_judgments(store) == 3


def test_expire_and_recent_traffic(store: FeedbackStore):
    qid = ask(store)
    sid = store.log_search("alpha?", [("A", 0.9), ("B", 0.8)], model_version=0)
    store.record_selection(sid, "B")
    (row,) = db.recent_traffic(store, 10)
    assert row.shown == ["A", "B"] and row.scores == [0.9, 0.8]
    assert [(i, r) for i, r, _seq in row.selected] == [("B", 2)] and row.last_seq == store.max_selection_seq()
    assert db.expire_questions(store, {qid: "test"}) == 1
    assert db.expire_questions(store, {qid: "test"}) == 0
    assert db.questions(store)[0]["closed_because"] == "test"
