"""The public API with the deterministic hashing encoder: exact rankings, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedloop import CatalogError, EmbedLoop, InvalidInputError, NotFoundError, NotShownError, Settings, StorageError
from embedloop.models.encoder import HashingEncoder


def test_search_ranks_and_logs(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    resp = fake_loop.search("Apple Hospitality REIT", k=3)
    assert resp.hits[0].item_id == "APLE"
    assert [h.rank for h in resp.hits] == [1, 2, 3]
    assert resp.hits[0].score >= resp.hits[1].score >= resp.hits[2].score
    sel = fake_loop.record_selection(resp.search_id, resp.hits[1].item_id)
    assert sel.rank == 2
    assert fake_loop.status()["feedback_count"] == 1


def test_upsert_and_delete_update_the_index(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    fake_loop.add_items([{"id": "AAPL", "text": "AAPL - Zebra Zoo Holdings"}])
    assert fake_loop.search("zebra zoo", k=1).hits[0].item_id == "AAPL"
    fake_loop.delete_items(["AAPL"])
    assert all(h.item_id != "AAPL" for h in fake_loop.search("zebra zoo apple", k=8).hits)
    assert fake_loop.status()["items"] == len(finance_items) - 1


def test_index_persists_and_another_process_sees_changes(settings: Settings, finance_items):
    enc = HashingEncoder()
    with EmbedLoop(settings, encoder=enc) as a:
        a.add_items(finance_items)
    with EmbedLoop(settings, encoder=enc) as b, EmbedLoop(settings, encoder=enc) as c:
        assert b.search("tesla", k=1).hits[0].item_id == "TSLA"
        c.add_items([{"id": "NEW", "text": "NEW - Quantum Widgets Corp"}])
        b.searcher.sync_interval = 0.0
        assert b.search("quantum widgets", k=1).hits[0].item_id == "NEW"


def test_external_feedback(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    out = fake_loop.record_feedback("Apple stock price", shown=["APLE", "AAPL"], selected=["AAPL"], event_id="ev1")
    assert out["selections"][0]["rank"] == 2
    again = fake_loop.record_feedback("Apple stock price", shown=["APLE", "AAPL"], selected=["AAPL"], event_id="ev1")
    assert again["search_id"] == out["search_id"]
    assert fake_loop.status()["feedback_count"] == 1
    batch = fake_loop.record_feedback_batch(
        [
            {"query": "msft", "shown": ["MSFT"], "selected": ["MSFT"]},
            {"query": "tsla", "shown": ["TSLA", "SPY"], "selected": []},
        ]
    )
    assert batch == {"events": 2, "selections": 1}


@pytest.mark.parametrize("query", ["", "   ", "\x00abc", b"bytes", 42, "a" * 10_001, "bad \udcff surrogate"])
def test_bad_queries(fake_loop: EmbedLoop, finance_items, query):
    fake_loop.add_items(finance_items)
    with pytest.raises(InvalidInputError) as info:
        fake_loop.search(query)
    assert info.value.field == "query"
    assert fake_loop.feedback_stats()["searches"] == 0


@pytest.mark.parametrize("k", [0, -1, 1_000_001, 2.5, "10", True])
def test_bad_k(fake_loop: EmbedLoop, finance_items, k):
    fake_loop.add_items(finance_items)
    with pytest.raises(InvalidInputError, match="k"):
        fake_loop.search("apple", k=k)


def test_k_larger_than_catalog_returns_all(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    assert len(fake_loop.search("apple", k=100).hits) == len(finance_items)


def test_selection_errors(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    resp = fake_loop.search("apple", k=2)
    with pytest.raises(NotFoundError):
        fake_loop.record_selection("no-such-search", "AAPL")
    shown = {h.item_id for h in resp.hits}
    hidden = next(i["id"] for i in finance_items if i["id"] not in shown)
    with pytest.raises(NotShownError):
        fake_loop.record_selection(resp.search_id, hidden)
    first = fake_loop.record_selection(resp.search_id, resp.hits[0].item_id, event_id="dup")
    second = fake_loop.record_selection(resp.search_id, resp.hits[0].item_id, event_id="dup")
    assert second.duplicate and second.seq == first.seq
    assert fake_loop.feedback_stats()["selections"] == 1


def test_external_feedback_errors(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    with pytest.raises(InvalidInputError, match="not in shown"):
        fake_loop.record_feedback("q", shown=["AAPL"], selected=["MSFT"])
    with pytest.raises(NotFoundError, match="UNKNOWN"):
        fake_loop.record_feedback("q", shown=["AAPL", "UNKNOWN"], selected=["AAPL"])
    with pytest.raises(InvalidInputError, match="repeats"):
        fake_loop.record_feedback("q", shown=["AAPL", "AAPL"], selected=["AAPL"])
    with pytest.raises(InvalidInputError, match="event 2"):
        fake_loop.record_feedback_batch([{"query": "a", "shown": ["AAPL"], "selected": []}, {"query": ""}])
    assert fake_loop.feedback_stats()["searches"] == 0


def test_catalog_rows_are_validated_whole(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    with pytest.raises(CatalogError, match="row 2.*no 'text'"):
        fake_loop.add_items([{"id": "X1", "text": "ok"}, {"id": "X2"}])
    with pytest.raises(CatalogError, match="duplicate id 'X1'.*row 1"):
        fake_loop.add_items([{"id": "X1", "text": "a"}, {"id": "X1", "text": "b"}])
    with pytest.raises(CatalogError, match="no 'id'"):
        fake_loop.add_items([{"text": "no id"}])
    assert fake_loop.status()["items"] == len(finance_items)


def test_catalog_files(fake_loop: EmbedLoop, tmp_path: Path):
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("id,text,sector\nA1,Alpha Corp,Tech\nB1,Beta Inc,\n")
    assert fake_loop.load_catalog(csv_path)["changed"] == 2
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"id": "C1", "text": "Gamma"}\nnot json\n')
    with pytest.raises(CatalogError, match="line 2 is not valid JSON"):
        fake_loop.load_catalog(jsonl)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"id,text\nA,\xff\xfe\n")
    with pytest.raises(CatalogError, match="not UTF-8"):
        fake_loop.load_catalog(binary)
    with pytest.raises(CatalogError, match="does not exist"):
        fake_loop.load_catalog(tmp_path / "missing.csv")
    with pytest.raises(CatalogError, match="format"):
        fake_loop.load_catalog(csv_path.rename(tmp_path / "c.txt"))
    assert fake_loop.status()["items"] == 2


def test_unreadable_storage_path(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="LEARNING_STORAGE_PATH"):
        EmbedLoop(Settings(storage_path=blocker / "sub"), encoder=HashingEncoder())


def test_changing_base_model_on_same_storage_is_refused(settings: Settings):
    EmbedLoop(settings, encoder=HashingEncoder()).close()
    from embedloop import ConfigError

    with pytest.raises(ConfigError, match="was built with"):
        EmbedLoop(settings.replace(embedding_model="all-mpnet-base-v2"), encoder=HashingEncoder())
