"""The HTTP API in process (TestClient): every endpoint, its auth and its bad input."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from embedloop import ConfigError
from embedloop.serving.common import check_bind, is_loopback
from embedloop.serving.http import create_app, serve
from embedloop.store.locks import acquire

TOKEN = "admin-secret"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def loop(fake_loop, finance_items):
    fake_loop.add_items(finance_items)
    return fake_loop


@pytest.fixture
def client(loop, settings):
    with TestClient(create_app(loop, settings.replace(api_token=TOKEN))) as c:
        yield c


def assert_error(response, status: int, kind: str, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind
    assert error["message"]
    if field is not None:
        assert error["field"] == field
    return error


# ------------------------------------------------------------------- search
def test_search(client):
    r = client.post("/search", json={"query": "Apple Inc. Common Stock", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["hits"][0]["item_id"] == "AAPL" and len(body["hits"]) == 3
    assert body["search_id"] and body["model_version"] == 0


@pytest.mark.parametrize(
    ("payload", "status", "kind", "field"),
    [
        ({}, 422, "ValidationError", "query"),
        ({"query": ""}, 422, "ValidationError", "query"),
        ({"query": "apple", "k": 0}, 422, "ValidationError", "k"),
        ({"query": "apple", "k": "5"}, 422, "ValidationError", "k"),
        ({"query": "apple", "limit": 5}, 422, "ValidationError", "limit"),
        ({"query": "   "}, 400, "InvalidInputError", "query"),
        ({"query": "apple", "k": 5000}, 400, "InvalidInputError", "k"),  # over EMBEDLOOP_MAX_K
    ],
)
def test_search_bad_input(client, payload, status, kind, field):
    assert_error(client.post("/search", json=payload), status, kind, field)


def test_malformed_json(client):
    r = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(r, 422, "ValidationError")


# ----------------------------------------------------------------- feedback
def test_selection_and_feedback(client):
    sid = client.post("/search", json={"query": "Tesla", "k": 2}).json()["search_id"]
    r = client.post("/selections", json={"search_id": sid, "item_id": "TSLA", "event_id": "ev-1"})
    assert r.status_code == 200 and r.json()["item_id"] == "TSLA" and not r.json()["duplicate"]
    assert client.post("/selections", json={"search_id": sid, "item_id": "TSLA", "event_id": "ev-1"}).json()[
        "duplicate"
    ]
    r = client.post("/feedback", json={"query": "apple stock", "shown": ["APLE", "AAPL"], "selected": ["AAPL"]})
    assert r.status_code == 200 and r.json()["selections"][0]["rank"] == 2
    assert client.get("/status").json()["feedback_count"] == 2


def test_selection_bad_input(client):
    assert_error(client.post("/selections", json={"search_id": "s1"}), 422, "ValidationError", "item_id")
    assert_error(client.post("/selections", json={"search_id": "nope", "item_id": "AAPL"}), 404, "NotFoundError")
    sid = client.post("/search", json={"query": "Tesla", "k": 1}).json()["search_id"]
    assert_error(
        client.post("/selections", json={"search_id": sid, "item_id": "MSFT"}), 409, "NotShownError", "item_id"
    )


@pytest.mark.parametrize(
    ("payload", "status", "kind", "field"),
    [
        ({"query": "q", "shown": [], "selected": []}, 422, "ValidationError", "shown"),
        ({"query": "q", "shown": ["AAPL"]}, 422, "ValidationError", "selected"),
        ({"query": "q", "shown": ["AAPL"], "selected": [""]}, 422, "ValidationError", "selected.0"),
        ({"query": "q", "shown": ["AAPL"], "selected": ["MSFT"]}, 400, "InvalidInputError", "selected"),
        ({"query": "q", "shown": ["AAPL", "AAPL"], "selected": []}, 400, "InvalidInputError", "shown"),
        ({"query": "q", "shown": ["ZZZZ"], "selected": []}, 404, "NotFoundError", None),
    ],
)
def test_feedback_bad_input(client, payload, status, kind, field):
    assert_error(client.post("/feedback", json=payload), status, kind, field)


def test_feedback_token(loop, settings):
    app = create_app(loop, settings.replace(api_token=TOKEN, feedback_token="fb-secret"))
    with TestClient(app) as c:
        event = {"query": "apple", "shown": ["AAPL"], "selected": ["AAPL"]}
        assert_error(c.post("/feedback", json=event), 401, "Unauthorized")
        assert_error(c.post("/feedback", json=event, headers={"Authorization": "Bearer wrong"}), 401, "Unauthorized")
        assert c.post("/feedback", json=event, headers={"Authorization": "Bearer fb-secret"}).status_code == 200
        assert c.post("/feedback", json=event, headers=ADMIN).status_code == 200
        sid = c.post("/search", json={"query": "apple"}).json()["search_id"]  # search stays open
        assert_error(c.post("/selections", json={"search_id": sid, "item_id": "AAPL"}), 401, "Unauthorized")


# --------------------------------------------------------------- fine-tuning
def test_status(client):
    status = client.get("/status").json()
    assert {"should_fine_tune", "feedback_count", "threshold", "current_model"} <= set(status)
    assert status["active_version"] == 0 and status["next_scheduled_check"] is None
    assert status["training_in_progress"] is False


def test_fine_tune_needs_the_admin_token(client):
    r = assert_error(client.post("/fine-tune"), 401, "Unauthorized")
    assert "Bearer" in r["message"]
    assert_error(client.post("/fine-tune", headers={"Authorization": "Bearer nope"}), 401, "Unauthorized")
    assert_error(client.post("/fine-tune", headers={"Authorization": f"Basic {TOKEN}"}), 401, "Unauthorized")


def test_admin_refused_without_a_configured_token(loop, settings):
    with TestClient(create_app(loop, settings)) as c:
        error = assert_error(c.post("/fine-tune", headers=ADMIN), 403, "Forbidden")
        assert "EMBEDLOOP_API_TOKEN" in error["message"]
        assert_error(c.post("/models/rollback"), 403, "Forbidden")
        assert_error(c.post("/catalog/items", json={"items": [{"id": "X", "text": "x"}]}), 403, "Forbidden")
        assert c.post("/search", json={"query": "apple"}).status_code == 200


def test_fine_tune_without_feedback_is_skipped(client):
    r = client.post("/fine-tune", headers=ADMIN)
    assert r.status_code == 200
    assert r.json()["status"] == "skipped" and "no new feedback" in r.json()["reasons"][0]


def test_fine_tune_bad_input(client):
    assert_error(client.post("/fine-tune", json={"force": "yes"}, headers=ADMIN), 422, "ValidationError", "force")
    assert_error(client.post("/fine-tune", json={"forced": True}, headers=ADMIN), 422, "ValidationError", "forced")


def test_fine_tune_conflict_names_the_holder(loop, settings):
    assert acquire(loop.store, "training", "agent-42", 60)
    with TestClient(create_app(loop, settings, insecure=True)) as c:  # insecure: no token needed
        error = assert_error(c.post("/fine-tune"), 409, "TrainingInProgressError")
        assert "agent-42" in error["message"]
        assert c.get("/status").json()["training_lock"]["owner"] == "agent-42"


def test_fine_tune_returns_the_cycle_result(client, loop, monkeypatch):
    # A stand-in cycle: the endpoint's translation is under test, not the training.
    def cycle(force: bool = False) -> dict[str, Any]:
        return {"status": "rejected", "version": 1, "metrics": {"candidate": 0.5}, "reasons": ["gate"], "f": force}

    monkeypatch.setattr(loop, "fine_tune", cycle)
    r = client.post("/fine-tune", json={"force": True}, headers=ADMIN)
    assert r.status_code == 200
    assert r.json() == {
        "status": "rejected",
        "version": 1,
        "metrics": {"candidate": 0.5},
        "reasons": ["gate"],
        "f": True,
    }
    assert client.post("/fine-tune", headers=ADMIN).json()["f"] is False  # the body is optional


# -------------------------------------------------------------------- models
def test_models_and_rollback(client):
    body = client.get("/models").json()
    assert body["active_version"] == 0 and [v["version"] for v in body["versions"]] == [0]
    assert_error(client.post("/models/rollback"), 401, "Unauthorized")
    error = assert_error(client.post("/models/rollback", headers=ADMIN), 404, "NotFoundError")
    assert "no earlier version" in error["message"]
    assert_error(client.post("/models/rollback", json={"version": 5}, headers=ADMIN), 404, "NotFoundError")
    assert_error(
        client.post("/models/rollback", json={"version": -1}, headers=ADMIN), 422, "ValidationError", "version"
    )
    assert_error(
        client.post("/models/rollback", json={"version": "1"}, headers=ADMIN), 422, "ValidationError", "version"
    )


# ------------------------------------------------------------------- catalog
def test_catalog_upsert_and_delete(client):
    item = {"id": "NVDA", "text": "NVDA - NVIDIA Corporation Common Stock", "metadata": {"sector": "tech"}}
    r = client.post("/catalog/items", json={"items": [item]}, headers=ADMIN)
    assert r.status_code == 200 and r.json() == {"received": 1, "changed": 1, "total": 9}
    hits = client.post("/search", json={"query": "NVIDIA Corporation", "k": 1}).json()["hits"]
    assert hits[0]["item_id"] == "NVDA"
    r = client.request("DELETE", "/catalog/items", json={"ids": ["NVDA"]}, headers=ADMIN)
    assert r.status_code == 200 and r.json() == {"deleted": 1, "total": 8}
    hits = client.post("/search", json={"query": "NVIDIA Corporation", "k": 8}).json()["hits"]
    assert "NVDA" not in {h["item_id"] for h in hits}


def test_catalog_bad_input(client):
    post = client.post
    assert_error(post("/catalog/items", json={"items": []}, headers=ADMIN), 422, "ValidationError", "items")
    assert_error(
        post("/catalog/items", json={"items": [{"id": "A"}]}, headers=ADMIN), 422, "ValidationError", "items.0.text"
    )
    bad_meta = {"items": [{"id": "A", "text": "a", "metadata": [1]}]}
    assert_error(post("/catalog/items", json=bad_meta, headers=ADMIN), 422, "ValidationError", "items.0.metadata")
    assert_error(post("/catalog/items", json={"items": [{"id": "A", "text": "a"}]}), 401, "Unauthorized")
    delete = client.request
    assert_error(delete("DELETE", "/catalog/items", json={"ids": "AAPL"}, headers=ADMIN), 422, "ValidationError", "ids")
    assert_error(delete("DELETE", "/catalog/items", json={"ids": ["NOPE"]}, headers=ADMIN), 404, "NotFoundError")
    assert_error(delete("DELETE", "/catalog/items", json={"ids": ["AAPL"]}), 401, "Unauthorized")


# ---------------------------------------------------------------- operations
def test_health_ready_openapi_and_unknown_paths(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready", "active_version": 0, "items": 8}
    spec = client.get("/openapi.json").json()
    paths = {
        "/search",
        "/selections",
        "/feedback",
        "/status",
        "/fine-tune",
        "/models",
        "/models/rollback",
        "/catalog/items",
        "/health",
        "/ready",
    }
    assert paths <= set(spec["paths"])
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert_error(client.get("/nope"), 404, "NotFound")
    assert_error(client.get("/search"), 405, "MethodNotAllowed")


def test_ready_answers_503_when_the_database_fails(client, loop, monkeypatch):
    def broken() -> int:
        raise ConnectionError("database is gone")

    monkeypatch.setattr(loop.store, "count_items", broken)
    assert_error(client.get("/ready"), 503, "NotReady")


def test_insecure_only_on_loopback(settings):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    check_bind("127.0.0.1", insecure=True)
    check_bind("0.0.0.0", insecure=False)
    with pytest.raises(ConfigError, match="loopback"):
        serve(settings, host="0.0.0.0", port=1, insecure=True)  # refused before anything starts
