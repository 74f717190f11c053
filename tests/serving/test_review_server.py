"""The review queue over a real HTTP server process (uvicorn on 127.0.0.1), hit with httpx."""

from __future__ import annotations

import httpx
import pytest
from _servers import free_port

FEEDBACK = {"Authorization": "Bearer fb-token"}


@pytest.mark.slow
def test_review_round_trip_over_a_real_server(start_server, minilm_catalog):
    port = free_port()
    server = start_server(
        "embedloop.serving.http",
        ["--storage", str(minilm_catalog), "--model", "all-MiniLM-L6-v2", "--port", str(port), "--no-scheduler"],
        EMBEDLOOP_API_TOKEN="admin-token",
        EMBEDLOOP_FEEDBACK_TOKEN="fb-token",
    )
    base = f"http://127.0.0.1:{port}"
    server.wait_http(f"{base}/health")
    with httpx.Client(base_url=base, timeout=60) as http:
        http.post("/search", json={"query": "Apple stock price", "k": 3})
        assert http.get("/review/queue").status_code == 401
        (question,) = http.get("/review/queue", headers=FEEDBACK).json()["questions"]
        assert question["query"] == "Apple stock price"
        ids = [c["item_id"] for c in question["candidates"]]
        answer = {"review_id": question["review_id"], "selected": [ids[0]], "rejected": ids[1:3]}
        first = http.post("/review/answer", json=answer, headers=FEEDBACK)
        assert first.status_code == 200 and len(first.json()["judgments"]) == 3
        assert http.post("/review/answer", json=answer, headers=FEEDBACK).json()["duplicate"] is True
        assert http.get("/review/queue", headers=FEEDBACK).json()["questions"] == []
        assert http.get("/status").json()["review"] == {"open_questions": 0, "judgments": 3}
    assert server.terminate() == 0
