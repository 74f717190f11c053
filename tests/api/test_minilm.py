"""The README quickstart, on the real MiniLM."""

from __future__ import annotations

import pytest

from embedloop import EmbedLoop, ModelNotFoundError, Settings


def test_quickstart_lines(storage):
    loop = EmbedLoop(Settings(storage_path=storage, embedding_model="all-MiniLM-L6-v2"))
    loop.add_items(
        [
            {"id": "AAPL", "text": "AAPL - Apple Inc. Common Stock"},
            {"id": "APLE", "text": "APLE - Apple Hospitality REIT"},
        ]
    )
    resp = loop.search("Apple stock price", k=10)
    loop.record_selection(resp.search_id, "AAPL")
    loop.record_feedback("Apple stock price", shown=["APLE", "AAPL"], selected=["AAPL"])
    status = loop.status()
    assert {"should_fine_tune", "feedback_count", "threshold", "current_model"} <= set(status)
    assert status["feedback_count"] == 2
    assert status["current_model"] == "all-MiniLM-L6-v2"
    assert {h.item_id for h in resp.hits} == {"AAPL", "APLE"}
    loop.close()


def test_unknown_model_names_what_to_install(storage):
    with pytest.raises(ModelNotFoundError, match="pip install"):
        EmbedLoop(Settings(storage_path=storage, embedding_model="no-such-model-xyz"))
