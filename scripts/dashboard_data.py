"""Dashboard helpers shared by the browser tests, the screenshots and the page-load benchmark.

- ``populate(loop, ...)``: a store with N selections spread over D days and V model versions
  (feedback through the store's batch API, fake manifests through the registry, training runs
  through ``training/runs.py``), for a loop with the deterministic ``HashingEncoder``.
- ``ServerThread``: the real HTTP app under uvicorn on a free loopback port, in this process.
- ``chromium()``: headless Chromium from Debian's packages driven by Selenium, with nothing
  downloaded (no Selenium Manager, no component updates).
"""

from __future__ import annotations

import os
import random
import socket
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, update

from embedloop import EmbedLoop
from embedloop.store.database import READ_ONLY
from embedloop.store.runs import finish_run, start_run
from embedloop.store.schema import searches, training_runs
from embedloop.types import FeedbackEvent

CHROMIUM = os.environ.get("EMBEDLOOP_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("EMBEDLOOP_CHROMEDRIVER", "/usr/bin/chromedriver")
HOSTILE = "<script>alert(1)</script>"
WORDS = "apple stock bond fund index growth value energy bank tech retail health gold oil reit etf".split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """``uvicorn`` serving ``app`` on 127.0.0.1 in a daemon thread; ``stop()`` ends it."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the dashboard test server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def chromium(width: int = 1360, height: int = 900) -> Any:
    """A headless Chromium WebDriver: the system browser and driver, a fresh profile, no network fetches."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a browser or a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="embedloop-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-features=Translate,OptimizationHints,MediaRouter",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def wait_rendered(driver: Any, timeout: float = 10.0) -> float:
    """Wait until the page script has rendered; returns its own render time in ms."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.02).until(
        lambda d: d.execute_script(
            "var m = document.getElementById('app'); return m && m.getAttribute('aria-busy') === 'false';"
        )
    )
    return float(driver.find_element("id", "app").get_attribute("data-rendered-ms") or 0)


# ------------------------------------------------------------------ the data
def _catalog(n_items: int) -> list[dict[str, str]]:
    rng = random.Random(7)
    items = [{"id": "XSS", "text": HOSTILE}]
    for i in range(n_items - 1):
        words = rng.sample(WORDS, 3)
        items.append({"id": f"IT{i:05d}", "text": f"IT{i:05d} - {' '.join(w.title() for w in words)} Holdings"})
    return items


def populate(
    loop: EmbedLoop,
    *,
    selections_wanted: int = 1_000,
    versions: int = 5,
    days: int = 30,
    n_items: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Fill ``loop``'s store: a catalog, ``selections_wanted`` selections over ``days`` days, ``versions`` versions.

    About one search in five has no selection. Timestamps are spread evenly over the
    window (set after the batch insert, which stamps everything "now").
    """
    rng = random.Random(seed)
    items = _catalog(n_items)
    loop.add_items(items)
    ids = [i["id"] for i in items]
    events: list[FeedbackEvent] = []
    picked = 0
    while picked < selections_wanted:
        shown = rng.sample(ids, 10)
        if rng.random() < 0.2:
            query, chosen = f"{rng.choice(WORDS)} {rng.choice(WORDS)} fund", []
        else:
            query = f"{rng.choice(WORDS)} {rng.choice(WORDS)}"
            chosen = [shown[min(int(rng.expovariate(0.6)), 9)]]
            if rng.random() < 0.05:
                chosen = ["XSS"] if "XSS" in shown else chosen
            picked += 1
        events.append(FeedbackEvent(query=query, shown=shown, selected=chosen))
    search_ids: list[str] = []
    for start in range(0, len(events), 5_000):
        search_ids.extend(sid for sid, _ in loop.store.record_feedback(events[start : start + 5_000]))
    end = datetime.now(UTC)
    step = timedelta(days=days) / max(1, len(search_ids))
    stamps = [{"sid": sid, "at": end - timedelta(days=days) + step * (n + 1)} for n, sid in enumerate(search_ids)]
    with loop.store.engine.begin() as conn:
        conn.execute(
            update(searches).where(searches.c.id == bindparam("sid")).values(created_at=bindparam("at")), stamps
        )
        conn.exec_driver_sql(
            "UPDATE selections SET created_at = (SELECT created_at FROM searches WHERE searches.id = selections.search_id)"
        )
    _versions(loop, versions, rng, total_seq=loop.store.max_selection_seq(), end=end, days=days)
    if loop.store.engine.dialect.name == "sqlite":  # fold the bulk load's write-ahead log into the database file
        with loop.store.engine.connect().execution_options(**{READ_ONLY: True}) as conn:  # no write lock held
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"items": len(items), "searches": len(search_ids), "selections": picked, "versions": versions + 1}


def _versions(loop: EmbedLoop, n: int, rng: random.Random, *, total_seq: int, end: datetime, days: int) -> None:
    """``n`` trained versions (fake manifests) with their training runs; the newest promoted one is active."""
    base = loop.settings.embedding_model
    parent, acc, ndcg, last_active = 0, 0.71, 0.52, 0
    for v in range(1, n + 1):
        from_seq, to_seq = (v - 1) * total_seq // n, v * total_seq // n
        cand_acc = min(0.99, acc + rng.uniform(-0.02, 0.03))
        cand_ndcg = min(0.99, ndcg + rng.uniform(-0.015, 0.02))
        promoted = cand_acc >= acc and cand_ndcg >= ndcg - 0.01
        metrics = {
            "active": {"triplet_accuracy": acc, "retrieval_ndcg@10": ndcg},
            "candidate": {"triplet_accuracy": cand_acc, "retrieval_ndcg@10": cand_ndcg},
        }
        reasons = (
            [f"triplet accuracy {cand_acc:.3f} >= 0.70 and >= active {acc:.3f}"]
            if promoted
            else [f"triplet accuracy {cand_acc:.3f} is below the active model's {acc:.3f}"]
        )
        timings = {
            "train_seconds": round(rng.uniform(40, 90), 3),
            "reembed_seconds": round(rng.uniform(20, 40), 3),
            "evaluate_seconds": round(rng.uniform(3, 8), 3),
        }
        if promoted:
            timings["promote_seconds"] = round(rng.uniform(0.5, 2), 3)
        run_id = start_run(loop.store, parent_version=parent, from_seq=from_seq, to_seq=to_seq)
        finish_run(
            loop.store,
            run_id,
            status="promoted" if promoted else "rejected",
            version=v,
            train_size=int((to_seq - from_seq) * 0.8),
            holdout_size=int((to_seq - from_seq) * 0.2),
            metrics={**metrics, "timings": timings},
            reasons=reasons,
        )
        started = end - timedelta(days=days) + timedelta(days=days) * v / (n + 1)
        with loop.store.engine.begin() as conn:
            conn.execute(
                update(training_runs)
                .where(training_runs.c.id == run_id)
                .values(started_at=started, finished_at=started + timedelta(seconds=sum(timings.values())))
            )
        loop.registry.folder(v).mkdir(parents=True, exist_ok=True)
        loop.registry.write_manifest(
            v,
            {
                "parent": parent,
                "base_model": base,
                "created": started.isoformat(),
                "kind": "trained",
                "mode": "full",
                "doc_generation": v,
                "feedback_window": {"from_seq": from_seq, "to_seq": to_seq, "replay": 0},
                "metrics": metrics,
                "primary_metric": "triplet_accuracy",
                "run_id": run_id,
                "status": "retired" if promoted else "rejected",
                "reasons": reasons,
            },
        )
        if promoted:
            parent, acc, ndcg, last_active = v, cand_acc, cand_ndcg, v
    if last_active:
        loop.activate(last_active)


def storage(prefix: str = "embedloop-dashboard-") -> Path:
    """A fresh temporary storage folder."""
    return Path(tempfile.mkdtemp(prefix=prefix))
