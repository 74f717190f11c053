"""Store.search_log: every search with what it showed and what was picked (the click model's input)."""

from __future__ import annotations

from embedloop.store import FeedbackStore
from embedloop.types import FeedbackEvent, FeedbackSession, Item


def test_search_log_includes_searches_without_selections(db_url: str):
    store = FeedbackStore(db_url)
    try:
        store.upsert_items([Item("A", "alpha"), Item("B", "beta"), Item("C", "gamma")])
        first = store.log_search("q one", [("A", 0.9), ("B", 0.5)], model_version=0)
        second = store.log_search("q two", [("C", 0.8), ("A", 0.7), ("B", 0.1)], model_version=0)
        store.record_selection(second, "A")
        store.record_feedback([FeedbackEvent("q three", ["B", "C"], ["C"])])
        log = store.search_log()
        assert [s.query for s in log] == ["q one", "q two", "q three"]
        assert log[0] == FeedbackSession(search_id=first, query="q one", shown=["A", "B"], selected=[])
        assert log[1].shown == ["C", "A", "B"]
        assert [(i, r) for i, r, _seq in log[1].selected] == [("A", 2)]
        assert [(i, r) for i, r, _seq in log[2].selected] == [("C", 2)]
        assert log[2].last_seq == store.max_selection_seq() > log[1].last_seq > 0
        # only the newest searches when limited, still oldest first
        assert [s.query for s in store.search_log(limit=2)] == ["q two", "q three"]
        # the feedback view still leaves out searches nobody picked from
        assert len(store.feedback_sessions()) == 2
    finally:
        store.close()
