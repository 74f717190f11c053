"""Phase 2: feedback ingest, product vs raw sqlite3 inserts."""

from __future__ import annotations

import logging
import random
import sqlite3
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perf.common import K, LookupEncoder, make_catalog, make_query, random_unit_vectors, ratio, settings_for

log = logging.getLogger("bench.performance")


# --------------------------------------------------------------------------- 2. feedback ingest
def feedback_events(items: Sequence[dict[str, Any]], n: int, seed: int = 5) -> list[dict[str, Any]]:
    """``n`` external searches: a query, 10 shown ids, one of them selected."""
    rng = random.Random(seed)
    ids = [i["id"] for i in items]
    out = []
    for _ in range(n):
        item = rng.choice(items)
        shown = rng.sample(ids, K)
        if item["id"] not in shown:
            shown[rng.randrange(K)] = item["id"]
        out.append({"query": make_query(item, rng), "shown": shown, "selected": [item["id"]]})
    return out


_RAW_TABLES = ("searches", "impressions", "selections")


class RawFeedbackDB:
    """The same three tables (DDL copied from the product's database), written with plain ``sqlite3``."""

    def __init__(self, path: Path, product_db: Path) -> None:
        src = sqlite3.connect(product_db)
        ddl = [
            sql
            for (sql,) in src.execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND tbl_name IN (?, ?, ?) "
                "ORDER BY CASE type WHEN 'table' THEN 0 ELSE 1 END",
                _RAW_TABLES,
            )
        ]
        src.close()
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        for sql in ddl:
            self.conn.execute(sql)
        self.ddl = ddl

    @staticmethod
    def rows(events: Sequence[dict[str, Any]]) -> tuple[list, list, list]:
        stamp = datetime.now(UTC).isoformat(sep=" ")
        searches, impressions, selections = [], [], []
        for e in events:
            sid = uuid.uuid4().hex
            searches.append((sid, e["query"], None, None, "external", None, stamp))
            impressions.extend((sid, rank, item, None) for rank, item in enumerate(e["shown"], start=1))
            for item in e["selected"]:
                selections.append((uuid.uuid4().hex, sid, item, e["shown"].index(item) + 1, stamp))
        return searches, impressions, selections

    def insert(self, events: Sequence[dict[str, Any]]) -> None:
        """One transaction; row building included (the product builds its rows too)."""
        searches, impressions, selections = self.rows(events)
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        c.executemany(
            "INSERT INTO searches (id, query, user_id, model_version, source, event_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            searches,
        )
        c.executemany("INSERT INTO impressions (search_id, rank, item_id, score) VALUES (?, ?, ?, ?)", impressions)
        c.executemany(
            "INSERT INTO selections (event_id, search_id, item_id, rank, created_at) VALUES (?, ?, ?, ?, ?)",
            selections,
        )
        c.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def bench_ingest(
    storage: Path, model_dir: Path, catalog_size: int, single_n: int, batch_size: int, batches: int
) -> dict[str, Any]:
    """Events/s: product single + batch vs raw sqlite3 (per-event transactions and executemany)."""
    from embedloop import EmbedLoop
    from embedloop.models.encoder import HashingEncoder

    items = make_catalog(catalog_size, seed=21)
    texts = [i["text"] for i in items]
    # Logging never touches the encoder: precomputed vectors keep the catalog set-up fast.
    encoder = LookupEncoder(HashingEncoder(384), texts, random_unit_vectors(len(items), 384, seed=21))
    events = feedback_events(items, single_n + batch_size * batches)
    single_events, batch_events = events[:single_n], events[single_n:]
    result: dict[str, Any] = {"catalog_items": catalog_size, "shown_per_event": K, "selected_per_event": 1}
    with EmbedLoop(settings_for(storage), encoder=encoder) as loop:
        loop.add_items([{"id": i["id"], "text": i["text"]} for i in items])
        db_file = Path(loop.store.engine.url.database or "")
        raw = RawFeedbackDB(storage.parent / f"{storage.name}-raw.db", db_file)

        for e in feedback_events(items, 20, seed=99):  # warm-up both paths
            loop.record_feedback(e["query"], e["shown"], e["selected"])
            raw.insert([e])

        # single events: the product one call per event; raw one transaction per event.
        # Wall time is what a caller sees; this thread's CPU time is robust to other load on the machine.
        half = len(single_events) // 2
        spent = {"product": [0.0, 0.0], "raw": [0.0, 0.0]}
        for part in (single_events[:half], single_events[half:]):
            for name in ("product", "raw"):
                wall, cpu = time.perf_counter(), time.thread_time()
                for e in part:
                    if name == "product":
                        loop.record_feedback(e["query"], e["shown"], e["selected"])
                    else:
                        raw.insert([e])
                spent[name][0] += time.perf_counter() - wall
                spent[name][1] += time.thread_time() - cpu
        n = len(single_events)
        result["single"] = {
            "events": n,
            "product_events_per_second": round(n / spent["product"][0], 1),
            "raw_events_per_second": round(n / spent["raw"][0], 1),
            "ratio": ratio(spent["raw"][0], spent["product"][0]),
            "product_events_per_cpu_second": round(n / spent["product"][1], 1),
            "raw_events_per_cpu_second": round(n / spent["raw"][1], 1),
            "cpu_ratio": ratio(spent["raw"][1], spent["product"][1]),
        }

        rates: dict[str, list[float]] = {"product": [], "raw": [], "product_cpu": [], "raw_cpu": []}
        for b in range(batches):
            chunk = batch_events[b * batch_size : (b + 1) * batch_size]
            order = ("product", "raw") if b % 2 == 0 else ("raw", "product")
            for name in order:
                wall, cpu = time.perf_counter(), time.thread_time()
                if name == "product":
                    loop.record_feedback_batch(chunk)
                else:
                    raw.insert(chunk)
                rates[name].append(len(chunk) / (time.perf_counter() - wall))
                rates[f"{name}_cpu"].append(len(chunk) / max(1e-9, time.thread_time() - cpu))
        raw.close()
        med = {k: statistics.median(v) for k, v in rates.items()}
        result["batch"] = {
            "batch_size": batch_size,
            "batches": batches,
            "product_events_per_second": round(med["product"], 1),
            "raw_events_per_second": round(med["raw"], 1),
            "ratio": ratio(med["product"], med["raw"]),
            "product_events_per_cpu_second": round(med["product_cpu"], 1),
            "raw_events_per_cpu_second": round(med["raw_cpu"], 1),
            "cpu_ratio": ratio(med["product_cpu"], med["raw_cpu"]),
            "product_runs": [round(r, 1) for r in rates["product"]],
            "raw_runs": [round(r, 1) for r in rates["raw"]],
        }
        stats = loop.feedback_stats()
        result["product_rows"] = {k: stats[k] for k in ("searches", "impressions", "selections")}
    return result
