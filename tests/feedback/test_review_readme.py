"""The README's review-queue lines, on the real MiniLM."""

from __future__ import annotations

from embedloop import EmbedLoop


def test_readme_review_lines(minilm_loop: EmbedLoop):
    loop = minilm_loop
    loop.add_items(
        [
            {"id": "AAPL", "text": "AAPL - Apple Inc. Common Stock"},
            {"id": "APLE", "text": "APLE - Apple Hospitality REIT"},
            {"id": "MSFT", "text": "MSFT - Microsoft Corporation Common Stock"},
        ]
    )
    loop.search("Apple stock price", k=2)
    q = loop.review_queue(limit=10)[0]
    assert q["query"] == "Apple stock price"
    assert {c["item_id"] for c in q["candidates"]} >= {"AAPL", "APLE"}
    loop.answer_review(q["review_id"], selected=["AAPL"], rejected=["APLE"], reviewer="ann")
    loop.record_judgment("Apple stock price", "MSFT", relevant=False)
    assert loop.status()["review"] == {"open_questions": 0, "judgments": 3}
