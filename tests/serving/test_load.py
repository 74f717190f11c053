"""Concurrency under load: clients log feedback over HTTP while a cycle trains and promotes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from _servers import free_port

pytestmark = pytest.mark.slow
TOKEN = "load-secret"
CLIENTS = 4
PHRASES = ["apple stock", "apple shares", "iphone maker", "apple inc equity", "tesla shares", "ev maker stock"]
TARGET = {"apple": "AAPL", "iphone": "AAPL", "tesla": "TSLA", "ev": "TSLA"}


def _event(client: int, n: int) -> dict:
    phrase = PHRASES[n % len(PHRASES)]
    target = TARGET[phrase.split()[0]]
    shown = ["APLE", "MSFT", "AAPL", "TSLA"]
    return {"query": f"{phrase} {client}-{n}", "shown": shown, "selected": [target], "event_id": f"c{client}-{n}"}


def _log(http: httpx.Client, client: int, start: int, count: int) -> int:
    sent = 0
    for n in range(start, start + count):
        body = _event(client, n)
        assert http.post("/feedback", json=body).status_code == 200
        if n % 5 == 0:  # a replay: must not count twice
            assert http.post("/feedback", json=body).status_code == 200
        sent += 1
    return sent


def test_feedback_over_http_during_a_cycle_loses_and_doubles_nothing(start_server, minilm_catalog):
    port = free_port()
    server = start_server(
        "embedloop.serving.http",
        ["--storage", str(minilm_catalog), "--model", "all-MiniLM-L6-v2", "--port", str(port), "--no-scheduler"],
        EMBEDLOOP_API_TOKEN=TOKEN,
        EMBEDLOOP_FINE_TUNE_THRESHOLD="20",
        EMBEDLOOP_MIN_HOLDOUT_QUERIES="3",
        EMBEDLOOP_EPOCHS="1",
        EMBEDLOOP_SHOW_PROGRESS="false",
    )
    base = f"http://127.0.0.1:{port}"
    server.wait_http(f"{base}/health")
    limits = httpx.Limits(max_connections=CLIENTS + 2)
    with httpx.Client(base_url=base, timeout=300, limits=limits) as http:
        with ThreadPoolExecutor(CLIENTS) as pool:
            sent = sum(pool.map(lambda c: _log(http, c, 0, 15), range(CLIENTS)))

        result: dict = {}

        def train() -> None:
            answer = http.post("/fine-tune", json={"force": True}, headers={"Authorization": f"Bearer {TOKEN}"})
            result.update(answer.json())

        trainer = threading.Thread(target=train)
        trainer.start()
        searches: list[int] = []
        with ThreadPoolExecutor(CLIENTS + 1) as pool:
            logged = [pool.submit(_log, http, c, 15, 25) for c in range(CLIENTS)]
            while trainer.is_alive():
                searches.append(http.post("/search", json={"query": "apple stock", "k": 3}).status_code)
            sent += sum(f.result() for f in logged)
        trainer.join()

        assert result.get("status") in ("promoted", "trial", "rejected"), result
        assert searches and set(searches) == {200}
        status = http.get("/status").json()
        assert status["total_feedback"] == sent  # every event once: none lost, replays not doubled
        if result["status"] == "promoted":
            assert status["active_version"] == result["version"]
            assert (
                http.post("/search", json={"query": "apple stock", "k": 3}).json()["model_version"] == result["version"]
            )
    assert server.terminate() == 0
