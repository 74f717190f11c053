#!/usr/bin/env python
"""What exploration brings in: selections of results from outside the active model's top 10, and how many are right.

Insertion (``exploration="insert"``/``"both"``, ``search/exploration.py``) exists to collect positives the
active model ranks at 11-50, which clicks on its own top 10 never give. This counts them, without training:
the base model ranks every train query of a BEIR dataset once (top 50, through the product's index), then
``--sessions`` simulated searches per setting draw a train query, randomise the shown top 10 with the
product's :func:`~embedloop.search.exploration.explore`, and let the quality benchmark's simulated user
(:class:`~embedloop.simulation.ClickModel`, the same defaults) select. Printed per setting, per 1,000 searches:

- selections, and selections of judged-relevant documents;
- *deep* selections (of a result the ranker had at 11-50) and deep selections of relevant documents —
  the positives exploration is for — and their precision;
- distinct (query, relevant deep document) pairs found over all the searches.

Also printed: where the judged-relevant documents of the train queries sit in the base ranking (1-10,
11-20, 21-50, beyond), which bounds what any insertion can find.

    python bench/exploration_yield.py --dataset scifact --sessions 20000 --out bench/results/exploration_yield-scifact.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if (ROOT / "src").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from embedloop.benchmarks.beir import load_beir  # noqa: E402
from embedloop.benchmarks.quality import DATA_ROOT, DEFAULTS, index_corpus  # noqa: E402
from embedloop.search.exploration import explore  # noqa: E402
from embedloop.simulation import ClickModel  # noqa: E402

logger = logging.getLogger("bench.exploration_yield")

#: How deep the ranker's list is read (insertion draws from ranks 11-50).
DEPTH = 50
SETTINGS = (("off", 0.0), ("insert", 0.1), ("insert", 0.3), ("fairpairs", 0.3), ("both", 0.1), ("both", 0.3))


def rank_bands(ranked: dict[str, list[str]], relevant: dict[str, set[str]]) -> dict[str, int]:
    """How many judged-relevant documents sit at ranks 1-10, 11-20, 21-50 and beyond 50."""
    bands: Counter[str] = Counter()
    for qid, docs in relevant.items():
        position = {item: r for r, item in enumerate(ranked[qid], start=1)}
        for doc in docs:
            r = position.get(doc)
            bands["1-10" if r and r <= 10 else "11-20" if r and r <= 20 else "21-50" if r else ">50"] += 1
    return {band: bands[band] for band in ("1-10", "11-20", "21-50", ">50")}


def simulate(
    ranked: dict[str, list[str]],
    relevant: dict[str, set[str]],
    mode: str,
    rate: float,
    sessions: int,
    user: ClickModel,
    seed: int,
) -> dict[str, Any]:
    """``sessions`` simulated searches under one exploration setting; counts per 1,000 searches."""
    rng = random.Random(seed)
    qids = sorted(relevant)
    counts: Counter[str] = Counter()
    found: set[tuple[str, str]] = set()
    for _ in range(sessions):
        qid = rng.choice(qids)
        if mode == "off":
            shown, origin = ranked[qid][:10], list(range(1, 11))
        else:
            randomised = explore(ranked[qid], 10, mode=mode, rate=rate, rng=rng)
            shown, origin = randomised.shown, randomised.original_rank
        for item in user.clicks(shown, relevant[qid], rng):
            right = item in relevant[qid]
            deep = origin[shown.index(item)] > 10
            counts["selections"] += 1
            counts["relevant"] += right
            counts["deep"] += deep
            counts["deep_relevant"] += deep and right
            if deep and right:
                found.add((qid, item))
    per = 1000.0 / sessions
    return {
        "mode": mode,
        "rate": rate,
        "selections_per_1000": round(counts["selections"] * per, 1),
        "relevant_per_1000": round(counts["relevant"] * per, 1),
        "deep_per_1000": round(counts["deep"] * per, 2),
        "deep_relevant_per_1000": round(counts["deep_relevant"] * per, 2),
        "deep_precision": round(counts["deep_relevant"] / counts["deep"], 3) if counts["deep"] else None,
        "distinct_deep_relevant_pairs": len(found),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(DEFAULTS), default="scifact")
    p.add_argument("--data-root", type=Path, default=DATA_ROOT)
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--sessions", type=int, default=20000, help="simulated searches per setting")
    p.add_argument("--corpus-limit", type=int, default=None)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--index-cache", type=Path, default=ROOT / "bench-results" / "index-cache")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("sentence_transformers", "transformers", "httpx", "embedloop"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.sessions < 1:
        p.error("--sessions must be at least 1")

    from embedloop import Settings

    # dev is read too: where a dataset has no dev split it is carved out of train, and its queries must stay unseen
    splits = ("train", "dev")
    data = load_beir(args.data_root / args.dataset, splits=splits, corpus_limit=args.corpus_limit, seed=args.seed)
    relevant = data.relevant("train")
    storage = Path(tempfile.mkdtemp(prefix=f"embedloop-exploration-{args.dataset}-"))
    settings = Settings(embedding_model=args.model, storage_path=storage, show_progress=False)
    try:
        items = [{"id": d, "text": t} for d, t in sorted(data.corpus.items())]
        with index_corpus(settings, items, args.dataset, args.index_cache) as loop:
            ranked = {qid: [h.item_id for h in loop.search(data.queries[qid], k=DEPTH).hits] for qid in relevant}
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    bands = rank_bands(ranked, relevant)
    logger.info("%s: %d train queries; judged-relevant documents by base rank: %s", args.dataset, len(relevant), bands)
    rows = []
    for mode, rate in SETTINGS:
        row = simulate(ranked, relevant, mode, rate, args.sessions, ClickModel(), args.seed)
        rows.append(row)
        logger.info("%s", row)
    results = {
        "benchmark": "exploration_yield",
        "dataset": args.dataset,
        "train_queries": len(relevant),
        "corpus_docs": len(data.corpus),
        "sessions_per_setting": args.sessions,
        "relevant_by_base_rank": bands,
        "settings": rows,
    }
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
