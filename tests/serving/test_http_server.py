"""A real uvicorn server process on 127.0.0.1, hit with httpx; shut down by SIGTERM or SIGINT.

Started both as ``python -m embedloop.serving.http`` and through the
installed ``embedloop serve`` console script.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest
from _servers import child_env, free_port

TOKEN = "process-secret"


@pytest.mark.slow
def test_real_server_round_trip(start_server, minilm_catalog):
    port = free_port()
    server = start_server(
        "embedloop.serving.http",
        ["--storage", str(minilm_catalog), "--model", "all-MiniLM-L6-v2", "--port", str(port)],
        EMBEDLOOP_API_TOKEN=TOKEN,
    )
    base = f"http://127.0.0.1:{port}"
    server.wait_http(f"{base}/health")
    with httpx.Client(base_url=base, timeout=60) as http:
        assert http.get("/ready").json()["items"] == 8
        found = http.post("/search", json={"query": "Apple stock price", "k": 3}).json()
        assert found["hits"][0]["item_id"] in {"AAPL", "APLE"}
        picked = http.post("/selections", json={"search_id": found["search_id"], "item_id": "AAPL"})
        assert picked.status_code == 200
        status = http.get("/status").json()
        assert status["feedback_count"] == 1
        assert status["next_scheduled_check"] is not None  # the scheduler runs with the server
        bad = http.post("/search", json={"query": "apple", "k": 0})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "k"
        assert http.post("/catalog/items", json={"items": [{"id": "X", "text": "x"}]}).status_code == 401
        added = http.post(
            "/catalog/items",
            json={"items": [{"id": "NVDA", "text": "NVDA - NVIDIA Corporation Common Stock"}]},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert added.status_code == 200 and added.json()["total"] == 9
    assert server.terminate() == 0  # clean shutdown on SIGTERM
    assert "HTTP server stopped" in server.log.read_text()


def test_insecure_on_a_public_address_is_refused(storage):
    args = ["--storage", str(storage), "--host", "0.0.0.0", "--insecure", "--port", str(free_port())]
    done = subprocess.run(
        [sys.executable, "-m", "embedloop.serving.http", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "loopback" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "scheduler"),
    [(signal.SIGINT, True), (signal.SIGTERM, True), (signal.SIGINT, False)],
    ids=["sigint", "sigterm", "sigint-no-scheduler"],
)
def test_embedloop_serve_answers_and_shuts_down_cleanly(start_cli, minilm_catalog, sig, scheduler):
    port = free_port()
    args = ["-v", "--storage", str(minilm_catalog), "--model", "all-MiniLM-L6-v2", "serve", "--insecure"]
    args += ["--port", str(port)] + ([] if scheduler else ["--no-scheduler"])
    server = start_cli(args)
    base = f"http://127.0.0.1:{port}"
    server.wait_http(f"{base}/health")
    with httpx.Client(base_url=base, timeout=60) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/ready").json()["items"] == 8
        found = http.post("/search", json={"query": "Microsoft", "k": 1}).json()
        assert found["hits"][0]["item_id"] == "MSFT"
        status = http.get("/status").json()
        assert (status["next_scheduled_check"] is not None) is scheduler
        # --insecure on loopback: admin operations need no token
        added = http.post("/catalog/items", json={"items": [{"id": "NVDA", "text": "NVDA - NVIDIA Corporation"}]})
        assert added.status_code == 200 and added.json()["total"] == 9
    assert server.terminate(sig=sig) == 0  # a clean exit, not killed by the signal
    log = server.log.read_text()
    assert "Traceback" not in log
    assert "embedloop HTTP server stopped." in log
    assert ("Fine-tuning scheduler stopped." in log) is scheduler
