"""Dashboard page loads and JSON endpoint latency on a large store.

A SQLite store with N selections (default 100,000, over 30 days, ~1.25 searches per selection,
10 items shown each) and V model versions with their training runs (default 50), filled through
the store's batch API and the registry (scripts/dashboard_data.py). The real HTTP app runs under
uvicorn in this process; headless Chromium (scripts/install_browser.sh) loads every page.

Page load = from navigation start to the page script's last DOM change (the browser's own clock:
HTML, scripts, every API call and the render), also measured from the WebDriver call.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/dashboard.py --out bench/results/dashboard.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from dashboard_data import ServerThread, chromium, populate, storage, wait_rendered  # noqa: E402

from embedloop import EmbedLoop, Settings  # noqa: E402
from embedloop.models.encoder import HashingEncoder  # noqa: E402
from embedloop.serving.dashboard import PAGES  # noqa: E402
from embedloop.serving.http import create_app  # noqa: E402
from embedloop.skills.agent import status_report  # noqa: E402

logger = logging.getLogger("bench.dashboard")

ENDPOINTS = [
    "/status",
    "/models",
    "/runs?limit=20",
    "/runs?limit=500",
    "/feedback/timeline?days=7",
    "/feedback/timeline?days=30",
    "/feedback/timeline?days=90",
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--selections", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=30, help="requests per endpoint")
    parser.add_argument("--page-repeats", type=int, default=5, help="loads per page")
    parser.add_argument("--out", default="bench/results/dashboard.json")
    parser.add_argument("--storage", help="keep the generated store here and reuse it on the next run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    keep = args.storage is not None
    root = Path(args.storage) if keep else storage("embedloop-dashboard-bench-")
    reuse = keep and (root / "feedback.db").exists()
    settings = Settings(storage_path=root, embedding_model="all-MiniLM-L6-v2", show_progress=False, api_token="bench")
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": os.getloadavg()},
        "store": {},
    }
    try:
        with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
            tick = time.perf_counter()
            if reuse:
                stats = loop.feedback_stats()
                result["store"] = {k: stats[k] for k in ("items", "searches", "selections")}
                result["store"]["versions"] = len(loop.versions())
            else:
                result["store"] = populate(
                    loop, selections_wanted=args.selections, versions=args.versions, n_items=args.items, days=30
                )
                result["store"]["generate_seconds"] = round(time.perf_counter() - tick, 1)
            logger.info(f"store: {result['store']}")
            server = ServerThread(create_app(loop, settings))
            try:
                client = httpx.Client(base_url=server.url, timeout=60)
                endpoints = {}
                for path in ENDPOINTS:
                    client.get(path).raise_for_status()  # warm
                    times = []
                    for _ in range(args.repeats):
                        t = time.perf_counter()
                        client.get(path).raise_for_status()
                        times.append(1000 * (time.perf_counter() - t))
                    endpoints[path] = {
                        "p50_ms": round(statistics.median(times), 1),
                        "p95_ms": round(pct(times, 0.95), 1),
                        "max_ms": round(max(times), 1),
                    }
                    logger.info(f"{path:30s} {endpoints[path]}")
                result["endpoints"] = endpoints
                # CPU time of the same Python calls (this thread's own): what they cost on an idle machine,
                # whatever else shares the cores (wall times above include waiting for a core).
                calls = {
                    "/status": lambda: status_report(loop),
                    "/models": loop.versions,
                    "/runs?limit=20": lambda: loop.runs(20),
                    "/runs?limit=500": lambda: loop.runs(500),
                    "/feedback/timeline?days=7": lambda: loop.feedback_timeline(7),
                    "/feedback/timeline?days=30": lambda: loop.feedback_timeline(30),
                    "/feedback/timeline?days=90": lambda: loop.feedback_timeline(90),
                }
                for path, call in calls.items():
                    cpu = []
                    for _ in range(max(5, args.repeats // 3)):
                        t = time.thread_time()
                        call()
                        cpu.append(1000 * (time.thread_time() - t))
                    endpoints[path]["cpu_p50_ms"] = round(statistics.median(cpu), 1)
                    logger.info(f"{path:30s} cpu p50 {endpoints[path]['cpu_p50_ms']} ms")
                driver = chromium()
                try:
                    pages = {}
                    for page in PAGES:
                        url = f"{server.url}/dashboard/{page}"
                        driver.get(url)
                        wait_rendered(driver)  # warm: the browser's cache holds the static files after this
                        browser_ms, wall_ms, render_ms = [], [], []
                        for _ in range(args.page_repeats):
                            t = time.perf_counter()
                            driver.get(url)
                            render_ms.append(wait_rendered(driver, timeout=30))
                            wall_ms.append(1000 * (time.perf_counter() - t))
                            since = driver.find_element("id", "app").get_attribute("data-since-navigation-ms")
                            browser_ms.append(float(since or 0))
                        pages[page] = {
                            "load_average": os.getloadavg()[0],
                            "load_median_ms": round(statistics.median(browser_ms), 1),
                            "load_max_ms": round(max(browser_ms), 1),
                            "webdriver_median_ms": round(statistics.median(wall_ms), 1),
                            "script_median_ms": round(statistics.median(render_ms), 1),
                        }
                        logger.info(f"/dashboard/{page:10s} {pages[page]}")
                    result["pages"] = pages
                finally:
                    driver.quit()
            finally:
                server.stop()
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    result["machine"]["load_after"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    logger.info(f"wrote {args.out}")


if __name__ == "__main__":
    main()
