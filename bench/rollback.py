"""Rollback and promotion time per training mode on a large catalog.

    python bench/rollback.py --items 100000 --out bench/results/rollback.json

Builds a catalog of synthetic security names (MiniLM, through the public API),
logs simulated feedback, promotes one ``adapter`` version (forced cycle), then
times ``rollback()`` / ``rollback(version=N)`` between the query-side version
and its document generation, and reports how many documents each step embedded.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from embedloop import EmbedLoop, Settings, TrainingMode

logger = logging.getLogger("bench.rollback")
WORDS = "alpha beta gamma delta apex summit harbor pine river stone cedar orbit nova quantum atlas crest".split()
KINDS = ["Common Stock", "Class A Common Stock", "ETF", "Depositary Shares", "Preferred Shares", "Warrants"]


def catalog(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        name = f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} Holdings"
        items.append({"id": f"S{i:06d}", "text": f"S{i:06d} - {name} {rng.choice(KINDS)}"})
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/rollback.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    storage = Path(tempfile.mkdtemp(prefix="embedloop-rollback-"))
    settings = Settings(
        storage_path=storage,
        embedding_model="all-MiniLM-L6-v2",
        training_mode=TrainingMode.ADAPTER,
        fine_tune_threshold=10,
        show_progress=False,
    )
    items = catalog(args.items, 1)
    with EmbedLoop(settings) as loop:
        tick = time.perf_counter()
        loop.add_items(items)
        index_seconds = time.perf_counter() - tick
        logger.info("Indexed %d items in %.1fs", args.items, index_seconds)
        rng = random.Random(2)
        for n in range(args.events):
            target = rng.choice(items[:200])
            words = target["text"].split(" - ")[1].split()
            query = f"{words[0].lower()} {words[1].lower()} {n % 37}"
            resp = loop.search(query, k=10)
            shown = [h.item_id for h in resp.hits]
            loop.record_feedback(
                query, shown=[*shown[:9], target["id"]] if target["id"] not in shown else shown, selected=[target["id"]]
            )
        docs = loop.load_encoder(0)
        before = docs.texts_encoded
        tick = time.perf_counter()
        result = loop.fine_tune(force=True)
        cycle_seconds = time.perf_counter() - tick
        logger.info("Cycle: %s in %.1fs (%s)", result["status"], cycle_seconds, result.get("timings"))
        promoted = result["status"] == "promoted"
        rollbacks, forwards = [], []
        if promoted:
            for _ in range(args.repeats):
                tick = time.perf_counter()
                loop.rollback()
                rollbacks.append(time.perf_counter() - tick)
                tick = time.perf_counter()
                loop.rollback(version=result["version"])
                forwards.append(time.perf_counter() - tick)
        report = {
            "items": args.items,
            "index_seconds": round(index_seconds, 2),
            "cycle": {
                "status": result["status"],
                "seconds": round(cycle_seconds, 2),
                "timings": result.get("timings"),
                "reasons": result["reasons"],
            },
            "documents_embedded_by_cycle_and_rollbacks": docs.texts_encoded - before,
            "rollback_to_parent_seconds_median": round(statistics.median(rollbacks), 4) if rollbacks else None,
            "rollforward_seconds_median": round(statistics.median(forwards), 4) if forwards else None,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
