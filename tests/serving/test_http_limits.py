"""HTTP request limits (issue 12, items 4 and 6): body size, malformed JSON positions, weak tokens."""

from __future__ import annotations

import json
import logging
import time

import pytest
from fastapi.testclient import TestClient

from embedloop.serving.http import create_app
from embedloop.serving.limits import json_position

TOKEN = "a-long-enough-admin-token"


@pytest.fixture
def client(fake_loop, finance_items, settings):
    fake_loop.add_items(finance_items)
    with TestClient(create_app(fake_loop, settings.replace(api_token=TOKEN, max_request_bytes=64 * 1024))) as c:
        yield c


def test_body_over_the_limit_is_refused_with_413(client):
    body = json.dumps({"query": "apple", "shown": ["AAPL"] * 20_000, "selected": []})
    r = client.post("/feedback", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["type"] == "RequestTooLargeError" and "EMBEDLOOP_MAX_REQUEST_BYTES" in error["message"]
    assert client.app.state is not None and client.get("/health").status_code == 200


def test_chunked_body_over_the_limit_is_refused(client):
    def chunks():
        yield b'{"query": "apple", "shown": ['
        for _ in range(10_000):
            yield b'"AAPL",'
        yield b'"MSFT"], "selected": []}'

    r = client.post("/feedback", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["type"] == "RequestTooLargeError"


def test_hundred_thousand_ids_are_refused_fast(fake_loop, settings):
    app = create_app(fake_loop, settings.replace(api_token=TOKEN))
    shown = [f"id{i}" for i in range(99_999)] + ["id5"]  # a repeat: the old check was quadratic (138 s)
    body = json.dumps({"query": "apple", "shown": shown, "selected": []})
    with TestClient(app) as c:
        started = time.perf_counter()
        r = c.post("/feedback", content=body, headers={"content-type": "application/json"})
        elapsed = time.perf_counter() - started
    assert r.status_code == 400 and r.json()["error"]["field"] == "shown"
    assert "the limit is 1000" in r.json()["error"]["message"]
    assert elapsed < 5.0  # generous for a shared CI machine; bench/rejected_requests.py measures it


def test_malformed_json_names_line_and_column(client):
    body = b'{\n  "query": "apple",\n  oops\n}'
    r = client.post("/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["field"] == "body"
    assert "line 3, column 3" in error["message"], error
    assert "15" not in error["field"]


def test_json_position():
    assert json_position('{\n  "a": x}', 9) == (2, 8)
    assert json_position("abc", 0) == (1, 1)
    assert json_position(None, 3) is None


def test_short_token_is_warned_about(fake_loop, settings, caplog):
    with caplog.at_level(logging.WARNING, logger="embedloop"):
        create_app(fake_loop, settings.replace(api_token="x"))
    assert any("EMBEDLOOP_API_TOKEN is 1 characters long" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="embedloop"):
        create_app(fake_loop, settings.replace(api_token=TOKEN))
    assert not [r for r in caplog.records if "characters long" in r.getMessage()]


def test_only_catalog_uploads_may_be_large(fake_loop, settings):
    app = create_app(fake_loop, settings.replace(api_token=TOKEN))  # defaults: 32 MiB catalog, ~3 MiB elsewhere
    admin = {"Authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    big_text = "protein " * 500_000  # 4,000,000 characters
    with TestClient(app) as c:
        r = c.post("/search", content=json.dumps({"query": big_text}), headers=admin)
        assert r.status_code == 413 and "the limit for this endpoint is" in r.json()["error"]["message"]
        r = c.post("/catalog/items", content=json.dumps({"items": [{"id": "X", "text": big_text}]}), headers=admin)
        assert r.status_code == 422, r.text  # read (not 413), then refused by the 1,000,000-character text limit
        assert r.json()["error"]["field"] == "items.0.text"
