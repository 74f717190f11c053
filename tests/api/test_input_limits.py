"""Sizes are checked first and every list check is linear (issue 12, item 4); long texts load (item 5)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from embedloop import EmbedLoop, InvalidInputError
from embedloop.validation import check_id_list


def test_duplicate_check_is_linear():
    ids = [f"id{i}" for i in range(100_000)]
    started = time.perf_counter()
    assert len(check_id_list(ids, "shown")) == 100_000
    # A repeated id made the old check count every id in the whole list: 138 s for 100,000 ids.
    with pytest.raises(InvalidInputError, match=r"repeats id\(s\) \['id7'\]"):
        check_id_list([*ids, "id7"], "shown")
    assert time.perf_counter() - started < 3.0


def test_oversized_list_is_refused_before_its_entries_are_checked(fake_loop: EmbedLoop):
    # Entry 0 is malformed; the size error must win, proving the size was checked first.
    shown = [None, *(f"id{i}" for i in range(100_000))]
    with pytest.raises(InvalidInputError, match=r"shown has 100001 ids; the limit is 1000 \(EMBEDLOOP_MAX_K\)"):
        fake_loop.record_feedback("apple", shown=shown, selected=[])
    with pytest.raises(InvalidInputError, match="selected has 100001 ids"):
        fake_loop.record_feedback("apple", shown=["A"], selected=shown)


def test_selected_not_in_shown_uses_a_set(fake_loop: EmbedLoop, finance_items):
    shown = [f"id{i}" for i in range(1000)]
    fake_loop.add_items([{"id": i, "text": f"item {i}"} for i in shown])
    out = fake_loop.record_feedback("apple", shown=shown, selected=shown[-3:])
    assert len(out["selections"]) == 3
    with pytest.raises(InvalidInputError, match="not in shown"):
        fake_loop.record_feedback("apple", shown=shown, selected=["nope"])


def test_batch_size_is_capped(fake_loop: EmbedLoop):
    events = [{"query": "q", "shown": ["A"], "selected": []}] * 10_001
    with pytest.raises(InvalidInputError, match="events has 10001 entries"):
        fake_loop.record_feedback_batch(events)
    assert fake_loop.feedback_stats()["searches"] == 0


def test_huge_query_and_id_are_refused_by_size(fake_loop: EmbedLoop):
    with pytest.raises(InvalidInputError, match=r"limit is 10000 \(EMBEDLOOP_MAX_QUERY_LENGTH\)"):
        fake_loop.search("q" * 5_000_000)
    with pytest.raises(InvalidInputError, match="at most 512 characters"):
        fake_loop.record_selection("s" * 5_000_000, "A")


def test_long_item_texts_are_kept_whole(fake_loop: EmbedLoop):
    text = "protein folding " * 20_000  # 320,000 characters: over the old 10,000 limit
    fake_loop.add_items([{"id": "LONG", "text": text}])
    hit = fake_loop.search("protein folding", k=1).hits[0]
    assert hit.item_id == "LONG" and hit.text == text.strip()
    assert fake_loop.settings.max_text_length == 1_000_000


SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SCIFACT = SHARED_DATA / "scifact" / "corpus.jsonl"


@pytest.mark.skipif(not SCIFACT.exists(), reason="shared SciFact corpus not present")
def test_scifact_long_abstracts_load_with_default_settings(fake_loop: EmbedLoop, tmp_path: Path):
    rows = []
    with SCIFACT.open(encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            text = f"{doc.get('title', '')}. {doc['text']}"
            if len(text) > 10_000:
                rows.append({"id": doc["_id"], "text": text})
    assert rows, "SciFact has abstracts over 10,000 characters"
    rows.append({"id": "short", "text": "a short abstract about vitamin D"})
    path = tmp_path / "scifact-long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = fake_loop.load_catalog(path)
    assert result["total"] == len(rows)
    longest = max(rows, key=lambda r: len(r["text"]))
    assert fake_loop.store.count_items() == len(rows)
    assert any(h.item_id == longest["id"] for h in fake_loop.search(longest["text"][:200], k=3).hits)
