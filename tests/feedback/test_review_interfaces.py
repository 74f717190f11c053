"""The review queue through MCP (SDK client, in process), HTTP (TestClient) and the agent skill."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mcp import Client

from embedloop import EmbedLoop
from embedloop.serving.http import create_app
from embedloop.serving.mcp_server import build_server
from embedloop.skills import Agent2EmbeddingSkill

FEEDBACK = {"Authorization": "Bearer fb-secret"}


@pytest.fixture
def loop(fake_loop: EmbedLoop, finance_items) -> EmbedLoop:
    fake_loop.add_items([*finance_items, {"id": "AAPL2", "text": "AAPL - Apple Inc. Common Stock (duplicate)"}])
    fake_loop.search("Apple Inc. Common Stock", k=3)  # AAPL and AAPL2 nearly tie
    return fake_loop


def test_mcp_round_trip(loop: EmbedLoop):
    server = build_server(loop)

    async def go() -> tuple[Any, ...]:
        async with Client(server) as client:
            queue = await client.call_tool("get_review_queue", {"limit": 5})
            question = json.loads(queue.content[0].text)["questions"][0]
            ids = [c["item_id"] for c in question["candidates"]]
            bad = await client.call_tool("answer_review", {"review_id": question["review_id"], "selected": ["ZZZ"]})
            empty = await client.call_tool("answer_review", {"review_id": question["review_id"]})
            answer = await client.call_tool(
                "answer_review",
                {"review_id": question["review_id"], "selected": [ids[0]], "rejected": [ids[1]], "reviewer": "agent"},
            )
            judged = await client.call_tool("record_judgment", {"query": "apple", "item_id": "AAPL", "relevant": True})
            unknown = await client.call_tool("answer_review", {"review_id": "r", "selected": [], "bogus": 1})
            after = await client.call_tool("get_review_queue", {})
            return question, bad, empty, answer, judged, unknown, after

    question, bad, empty, answer, judged, unknown, after = asyncio.run(go())
    assert question["reason"] in {"tied_scores", "no_selection"}
    assert bad.is_error and "not candidates" in bad.content[0].text
    assert empty.is_error and "empty" in empty.content[0].text
    assert not answer.is_error
    assert [j["reviewer"] for j in json.loads(answer.content[0].text)["judgments"]] == ["agent", "agent"]
    assert not judged.is_error and json.loads(judged.content[0].text)["relevant"] is True
    assert unknown.is_error and "bogus" in unknown.content[0].text
    assert question["review_id"] not in {q["review_id"] for q in json.loads(after.content[0].text)["questions"]}
    assert loop.status()["review"]["judgments"] == 3


def test_http_round_trip_behind_the_feedback_token(loop: EmbedLoop, settings):
    app = create_app(loop, settings.replace(api_token="admin", feedback_token="fb-secret"))
    with TestClient(app) as c:
        assert c.get("/review/queue").status_code == 401
        r = c.get("/review/queue", params={"limit": 3}, headers=FEEDBACK)
        assert r.status_code == 200, r.text
        question = r.json()["questions"][0]
        ids = [c_["item_id"] for c_ in question["candidates"]]
        body = {"review_id": question["review_id"], "selected": [ids[0]]}
        assert c.post("/review/answer", json=body).status_code == 401
        first = c.post("/review/answer", json=body, headers=FEEDBACK)
        assert first.status_code == 200 and first.json()["duplicate"] is False
        assert c.post("/review/answer", json=body, headers=FEEDBACK).json()["duplicate"] is True
        bad = c.post("/review/answer", json={"review_id": "nope", "selected": ["AAPL"]}, headers=FEEDBACK)
        assert bad.status_code == 404 and bad.json()["error"]["type"] == "NotFoundError"
        empty = c.post("/review/answer", json={"review_id": question["review_id"]}, headers=FEEDBACK)
        assert empty.status_code == 400 and empty.json()["error"]["field"] == "selected"
        judged = c.post("/judgments", json={"query": "tesla", "item_id": "TSLA", "relevant": True}, headers=FEEDBACK)
        assert judged.status_code == 200 and judged.json()["item_id"] == "TSLA"
        typo = c.post("/judgments", json={"query": "tesla", "item_id": "TSLA", "relevant": "yes"}, headers=FEEDBACK)
        assert typo.status_code == 422
        listed = c.get("/judgments", params={"query": "Tesla"}, headers=FEEDBACK).json()["judgments"]
        assert [j["item_id"] for j in listed] == ["TSLA"]
        status = c.get("/status").json()
        assert status["review"]["judgments"] == 2


def test_skill_tool_calls(loop: EmbedLoop):
    skill = Agent2EmbeddingSkill(loop)
    queue = asyncio.run(skill.call("get_review_queue", {"limit": 1}))
    (question,) = queue["questions"]
    result = asyncio.run(
        skill.call(
            "answer_review", {"review_id": question["review_id"], "rejected": [question["candidates"][1]["item_id"]]}
        )
    )
    assert result["judgments"][0]["relevant"] is False
