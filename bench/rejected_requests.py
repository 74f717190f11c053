"""Latency of refused oversized requests (issue 12: any rejected request answers in < 50 ms).

    python bench/rejected_requests.py --out bench/results/rejected_requests.json

Each case sends an oversized or malformed input and times the refusal, end to
end: through the HTTP API (FastAPI in process, JSON parsing and pydantic
included, over Starlette's test transport) and through the Python API. No
model is loaded: a refusal never encodes anything (the loop uses the
deterministic hashing encoder). Before the fix, ``POST /feedback`` with
100,000 shown ids (one repeated) took 138 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from embedloop import EmbedLoop, EmbedLoopError, Settings
from embedloop.models.encoder import HashingEncoder
from embedloop.serving.http import create_app

logger = logging.getLogger("bench.rejected_requests")
TARGET_MS = 50.0


def _json(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def http_cases(n_ids: int) -> list[tuple[str, str, str, Any, int]]:
    """(name, method, path, body bytes or an iterator factory, expected status)."""
    ids = [f"id{i}" for i in range(n_ids - 1)] + ["id5"]  # one repeat: the old check was quadratic
    return [
        (
            f"POST /feedback, shown = {n_ids:,} ids (one repeated)",
            "POST",
            "/feedback",
            _json({"query": "q", "shown": ids, "selected": []}),
            400,
        ),
        (
            f"POST /feedback, selected = {n_ids:,} ids",
            "POST",
            "/feedback",
            _json({"query": "q", "shown": ["A"], "selected": ids}),
            400,
        ),
        (
            "POST /search, query of 1,000,000 characters",
            "POST",
            "/search",
            _json({"query": "x" * 1_000_000, "k": 5}),
            400,
        ),
        (
            "POST /search, query of 5,000,000 characters",
            "POST",
            "/search",
            _json({"query": "x" * 5_000_000, "k": 5}),
            413,
        ),
        (
            "POST /selections, search_id of 1,000,000 characters",
            "POST",
            "/selections",
            _json({"search_id": "s" * 1_000_000, "item_id": "A"}),
            422,
        ),
        (
            "POST /catalog/items, body of 40 MiB (declared length)",
            "POST",
            "/catalog/items",
            b"{" + b" " * (40 * 1024 * 1024) + b"}",
            413,
        ),
        ("POST /feedback, chunked body of 4 MiB (cap ~3 MiB)", "POST", "/feedback", "chunked", 413),
        (
            "POST /search, malformed JSON (1 MB)",
            "POST",
            "/search",
            b'{"query": "' + b"x" * 1_000_000 + b'", oops}',
            422,
        ),
    ]


def _chunks() -> Any:
    """4 MiB without a Content-Length, in 64 KiB chunks: refused once the cap is passed."""
    block = b" " * (64 * 1024)
    yield b"{"
    for _ in range(64):
        yield block
    yield b"}"


def time_it(call: Callable[[], Any], repeat: int) -> dict[str, float]:
    call()  # warm-up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "max_ms": round(samples[-1], 3),
        "repeat": repeat,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ids", type=int, default=100_000, help="ids in the oversized lists")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "target_ms": TARGET_MS,
        "http": [],
        "python_api": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(storage_path=Path(tmp), embedding_model="all-MiniLM-L6-v2", api_token="x" * 32)
        with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
            loop.add_items([{"id": "A", "text": "apple"}])
            headers = {"content-type": "application/json", "authorization": f"Bearer {settings.api_token}"}
            with TestClient(create_app(loop, settings)) as client:
                for name, method, path, body, status in http_cases(args.ids):

                    def send(method: str = method, path: str = path, body: Any = body) -> int:
                        content = _chunks() if body == "chunked" else body
                        return client.request(method, path, content=content, headers=headers).status_code

                    got = send()
                    assert got == status, (name, got, status)
                    row = {"case": name, "status": got, **time_it(send, args.repeat)}
                    logger.info("%-60s %d  p50 %8.3f ms  max %8.3f ms", name, got, row["p50_ms"], row["max_ms"])
                    results["http"].append(row)
            ids = [f"id{i}" for i in range(args.ids - 1)] + ["id5"]
            api_cases: list[tuple[str, Callable[[], Any]]] = [
                (f"record_feedback, shown = {args.ids:,} ids", lambda: loop.record_feedback("q", ids, [])),
                ("search, query of 5,000,000 characters", lambda: loop.search("x" * 5_000_000)),
                (
                    "record_selection, search_id of 5,000,000 characters",
                    lambda: loop.record_selection("s" * 5_000_000, "A"),
                ),
                ("record_feedback_batch, 100,000 events", lambda: loop.record_feedback_batch([{}] * 100_000)),
            ]
            for name, call in api_cases:

                def refused(call: Callable[[], Any] = call, name: str = name) -> None:
                    try:
                        call()
                    except EmbedLoopError:
                        return
                    raise AssertionError(f"{name} was accepted")

                row = {"case": name, **time_it(refused, args.repeat)}
                logger.info("%-60s      p50 %8.3f ms  max %8.3f ms", name, row["p50_ms"], row["max_ms"])
                results["python_api"].append(row)
    worst = max(r["max_ms"] for r in results["http"] + results["python_api"])
    results["worst_ms"] = worst
    results["target_met"] = worst < TARGET_MS
    print(json.dumps(results, indent=2))  # noqa: T201
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
