"""Phases 4 and 5: one full cycle on simulated feedback, and search latency while it trains."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from embedloop.simulation import ClickModel, simulate_search
from perf.common import K, RssSampler, make_query, ratio, rss_mib, settings_for, summarise_ms

log = logging.getLogger("bench.performance")


# --------------------------------------------------------------------------- 4/5. feedback + cycle
def simulate_feedback(loop: Any, items: Sequence[dict[str, Any]], events: int, seed: int = 7) -> dict[str, Any]:
    """Simulated users: a query derived from an item, searched; the intended item is selected.

    When the intended item is not among the 10 shown, the search is reported through
    ``record_feedback`` with the item in the last shown place (as a caller with its own UI would).
    """
    rng = random.Random(seed)
    popular = rng.sample(list(items), min(len(items), max(20, events * 2 // 3)))
    in_top, outside = 0, 0
    tick = time.perf_counter()
    user, click_rng = ClickModel.perfect(), random.Random(seed)  # the shared simulator (embedloop.simulation)
    for _ in range(events):
        item = rng.choice(popular)
        q = make_query(item, rng)
        session = simulate_search(loop, q, {item["id"]}, user, click_rng, k=K, unseen="replace_last")
        in_top += bool(session.picks)
        outside += bool(session.reported)
    return {
        "events": events,
        "selected_from_search": in_top,
        "reported_via_record_feedback": outside,
        "seconds": round(time.perf_counter() - tick, 2),
    }


class _TrainStart(logging.Handler):
    """Notes when the fine-tuner logs the start of training."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.at: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.at is None and record.getMessage().startswith("Training on"):
            self.at = time.perf_counter()


def paced_searches(loop: Any, queries: Sequence[str], stop: threading.Event, interval: float, out: list) -> None:
    """Search at most every ``interval`` seconds until ``stop``; append ``(start, seconds)``."""
    n = 0
    while not stop.is_set():
        q = queries[n % len(queries)]
        n += 1
        tick = time.perf_counter()
        loop.search(q, k=K)
        out.append((tick, time.perf_counter() - tick))
        stop.wait(max(0.0, interval - (time.perf_counter() - tick)))


def run_cycle_bench(
    storage: Path, items: Sequence[dict[str, Any]], idle_searches: int = 100, interval: float = 0.1, seed: int = 11
) -> dict[str, Any]:
    """Serving RSS, idle paced search latency, then ``fine_tune(force=True)`` with paced searches alongside."""
    from embedloop import EmbedLoop

    rng = random.Random(seed)
    queries = [make_query(rng.choice(list(items)), rng) for _ in range(200)]
    with RssSampler() as mem:
        loop = EmbedLoop(settings_for(storage))
        for q in queries[:10]:
            loop.search(q, k=K)
        serving_peak = mem.peak_mib
        serving_after = rss_mib()

        idle: list[tuple[float, float]] = []
        stop = threading.Event()
        worker = threading.Thread(target=paced_searches, args=(loop, queries, stop, interval, idle))
        worker.start()
        while len(idle) < idle_searches:
            time.sleep(0.05)
        stop.set()
        worker.join()

        mem.reset()
        before_cycle = rss_mib()
        during: list[tuple[float, float]] = []
        stop = threading.Event()
        worker = threading.Thread(target=paced_searches, args=(loop, queries, stop, interval, during))
        marker = _TrainStart()
        logging.getLogger("embedloop.training.finetuner").addHandler(marker)
        worker.start()
        tick = time.perf_counter()
        try:
            result = loop.fine_tune(force=True)
        finally:
            wall = time.perf_counter() - tick
            stop.set()
            worker.join()
            logging.getLogger("embedloop.training.finetuner").removeHandler(marker)
        cycle_peak = mem.peak_mib
        loop.close()

    timings = dict(result.get("timings") or {})
    accounted = sum(v for v in timings.values() if isinstance(v, int | float))
    timings["other_seconds"] = round(wall - accounted, 3)
    train_lat: list[float] = []
    if marker.at is not None and "train_seconds" in timings:
        end = marker.at + timings["train_seconds"]
        train_lat = [s for t, s in during if marker.at <= t <= end]
    idle_stats = summarise_ms([s for _t, s in idle])
    during_stats = summarise_ms([s for _t, s in during])
    train_stats = summarise_ms(train_lat)
    metrics = result.get("metrics") or {}
    return {
        "status": result.get("status"),
        "reasons": result.get("reasons"),
        "train_examples": result.get("train_examples"),
        "holdout_sessions": result.get("holdout_sessions"),
        "metrics": {
            side: {k: round(v, 4) for k, v in (metrics.get(side) or {}).items()} for side in ("active", "candidate")
        },
        "wall_seconds": round(wall, 2),
        "timings": timings,
        "serving_peak_rss_mib": round(serving_peak, 1),
        "serving_rss_mib": round(serving_after, 1),
        "rss_before_cycle_mib": round(before_cycle, 1),
        "cycle_peak_rss_mib": round(cycle_peak, 1),
        "search_interval_seconds": interval,
        "search_idle": idle_stats,
        "search_during_cycle": during_stats,
        "search_during_training": train_stats,
        "during_cycle_p50_ratio": ratio(during_stats.get("p50_ms"), idle_stats.get("p50_ms")),
        "during_training_p50_ratio": ratio(train_stats.get("p50_ms"), idle_stats.get("p50_ms")),
        "during_training_p99_ratio": ratio(train_stats.get("p99_ms"), idle_stats.get("p99_ms")),
    }
