"""Search latency during a trial against outside one, in the same run (issue: trials, "serving during a trial").

A trial search encodes the query with both the active model and the candidate (the candidate on a second
thread), searches both indexes and interleaves. This measures p50 / p99 of ``loop.search`` with no trial,
then with a trial serving every search (``trial_share=1``), on the packaged securities catalog with MiniLM.
The candidate is a second copy of the base model's weights, so both encoders do the full work.

    python bench/trial_latency.py --items 10000 --searches 300 --torch-threads 1
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
from types import SimpleNamespace

from embedloop import EmbedLoop, Settings
from embedloop.models.encoder import SentenceTransformerEncoder
from embedloop.training.cycle import Candidate
from embedloop.training.trial import begin_trial

logger = logging.getLogger("bench.trial_latency")

QUERIES = ["apple stock", "bank of america", "s&p 500 etf", "nvidia shares", "treasury bond fund", "gold miners"]


def timed(loop: EmbedLoop, n: int, rng: random.Random) -> list[float]:
    out = []
    for _ in range(n):
        query = f"{rng.choice(QUERIES)} {rng.randint(0, 999)}"
        tick = time.perf_counter()
        loop.search(query, k=10)
        out.append((time.perf_counter() - tick) * 1000)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"p50_ms": round(statistics.median(ms), 2), "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--searches", type=int, default=300)
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    storage = Path(tempfile.mkdtemp(prefix="embedloop-trial-latency-"))
    settings = Settings(
        storage_path=storage,
        embedding_model="all-MiniLM-L6-v2",
        show_progress=False,
        trial_share=1.0,
        torch_threads=args.torch_threads,
    )
    with EmbedLoop(settings) as loop:
        loop.load_demo_catalog(limit=args.items)
        rng = random.Random(7)
        timed(loop, 20, rng)  # warm-up
        outside = timed(loop, args.searches, rng)
        # a candidate with its own copy of the weights and the same catalog vectors
        sv = loop.services()
        state = sv.state
        version = sv.registry.next_version()
        encoder = SentenceTransformerEncoder.load(loop.base_model_path())
        catalog = loop.store.catalog()
        keys = [r.key for r in catalog]
        candidate = Candidate(version, encoder, {}, corpus=state.index.vectors(keys))
        held = SimpleNamespace(catalog=catalog, revision=loop.store.catalog_revision())
        manifest = {"parent": 0, "base_model": settings.embedding_model, "kind": "trained", "mode": "full"}
        begin_trial(sv, state, candidate, manifest, held, run_id=None)
        timed(loop, 20, rng)
        during = timed(loop, args.searches, rng)
        loop.stop_trial("benchmark finished")
        after = timed(loop, args.searches, rng)
    result = {
        "items": args.items,
        "searches": args.searches,
        "torch_threads": args.torch_threads,
        "outside": summary(outside),
        "during_trial": summary(during),
        "after_trial": summary(after),
    }
    base = statistics.median([result["outside"]["p50_ms"], result["after_trial"]["p50_ms"]])
    result["p50_ratio"] = round(result["during_trial"]["p50_ms"] / base, 3)
    result["p99_ratio"] = round(result["during_trial"]["p99_ms"] / result["outside"]["p99_ms"], 3)
    text = json.dumps(result, indent=2)
    logger.info("%s", text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
