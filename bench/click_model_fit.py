#!/usr/bin/env python
"""How well the click model tells relevant clicks from mis-clicks, checked against the judgments.

Training keeps a click positive when the click model's P(relevant | the logs) reaches
``click_min_relevance`` (``training/signal.py``). This measures that decision on one round of simulated
traffic, without training: the base model ranks every train query of a BEIR dataset once (top 10, through
the product's index), ``--sessions`` searches draw a train query and let the quality benchmark's simulated
user (:class:`~embedloop.simulation.ClickModel`, with ``--noise``) select; the click model is fitted on the
resulting log twice — by rank (``click_model="pbm"``) and with the ranking's scores
(``click_model="pbm_scores"``) — and each clicked (query, item) pair's posterior is compared with the qrels.
Printed per variant: the AUC of the posterior (relevant clicks vs mis-clicks), and how many clicked pairs,
and of them how many relevant, are kept at the threshold.

    python bench/click_model_fit.py --dataset scifact --sessions 400 [--noise 0.5]
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
from embedloop.feedback.click_model import click_log, fit_click_model, normalise_query  # noqa: E402
from embedloop.simulation import ClickModel  # noqa: E402
from embedloop.types import FeedbackSession  # noqa: E402

logger = logging.getLogger("bench.click_model_fit")

#: ``query text -> [(item_id, score), ...]`` in rank order.
Ranked = dict[str, list[tuple[str, float]]]


def simulate(ranked: Ranked, relevant: dict[str, set[str]], sessions: int, user: ClickModel, seed: int) -> list:
    """``sessions`` searches of random queries (shown: their ranking) with the simulated user's selections."""
    rng = random.Random(seed)
    queries = sorted(ranked)
    out = []
    for n in range(sessions):
        query = rng.choice(queries)
        shown = [item for item, _s in ranked[query]]
        picks = user.clicks(shown, relevant[query], rng)
        out.append(FeedbackSession(f"s{n}", query, shown, [(i, shown.index(i) + 1, n) for i in picks]))
    return out


def auc(positive: list[float], negative: list[float]) -> float | None:
    """P(a random positive scores above a random negative), ties counted half."""
    if not positive or not negative:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in positive for q in negative)
    return wins / (len(positive) * len(negative))


def evaluate(ranked: Ranked, relevant: dict[str, set[str]], log: list, threshold: float) -> list[dict[str, Any]]:
    """Both click-model variants on ``log``: AUC of the posterior and what the threshold keeps."""
    table = {normalise_query(q): dict(hits) for q, hits in ranked.items()}
    truth = {normalise_query(q): items for q, items in relevant.items()}

    def scorer(queries: list[str], ids: list[list[str]]) -> list[list[float]]:
        return [[table[q].get(i, float("nan")) for i in row] for q, row in zip(queries, ids, strict=True)]

    clicked = sorted({(normalise_query(s.query), i) for s in log for i in s.selected_ids})
    rows = []
    for name, list_scorer in (("pbm", None), ("pbm_scores", scorer)):
        model = fit_click_model(click_log(log, list_scorer))
        post = {k: model.posterior[k] for k in clicked}
        right = [post[k] for k in clicked if k[1] in truth[k[0]]]
        wrong = [post[k] for k in clicked if k[1] not in truth[k[0]]]
        kept = [k for k in clicked if post[k] >= threshold]
        kept_right = sum(k[1] in truth[k[0]] for k in kept)
        rows.append(
            {
                "click_model": name,
                "clicked_pairs": len(clicked),
                "relevant_pairs": len(right),
                "auc": None if (a := auc(right, wrong)) is None else round(a, 3),
                "kept": len(kept),
                "kept_relevant": kept_right,
                "kept_precision": round(kept_right / len(kept), 3) if kept else None,
                "fit": model.summary(),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=sorted(DEFAULTS), default="scifact")
    p.add_argument("--data-root", type=Path, default=DATA_ROOT)
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--sessions", type=int, default=400, help="simulated searches (one round)")
    p.add_argument("--noise", type=float, default=0.0, help="share of selections replaced by a random shown result")
    p.add_argument("--threshold", type=float, default=0.5, help="click_min_relevance")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--index-cache", type=Path, default=ROOT / "bench-results" / "index-cache")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("sentence_transformers", "transformers", "httpx", "embedloop"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.sessions < 1:
        p.error("--sessions must be at least 1")
    if not 0.0 <= args.noise <= 1.0:
        p.error("--noise must be in [0, 1]")

    from embedloop import Settings

    data = load_beir(args.data_root / args.dataset, splits=("train", "dev"), seed=args.seed)
    relevant: dict[str, set[str]] = {}
    for qid, items in data.relevant("train").items():  # a query text asked under two ids pools its judgments
        relevant.setdefault(data.queries[qid], set()).update(items)
    storage = Path(tempfile.mkdtemp(prefix=f"embedloop-clickfit-{args.dataset}-"))
    settings = Settings(embedding_model=args.model, storage_path=storage, show_progress=False)
    try:
        items = [{"id": d, "text": t} for d, t in sorted(data.corpus.items())]
        with index_corpus(settings, items, args.dataset, args.index_cache) as loop:
            ranked = {q: [(h.item_id, h.score) for h in loop.search(q, k=10).hits] for q in relevant}
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    log = simulate(ranked, relevant, args.sessions, ClickModel(noise=args.noise), args.seed)
    rows = evaluate(ranked, relevant, log, args.threshold)
    for row in rows:
        logger.info("%s", {k: v for k, v in row.items() if k != "fit"})
    results = {
        "benchmark": "click_model_fit",
        "dataset": args.dataset,
        "sessions": args.sessions,
        "noise": args.noise,
        "threshold": args.threshold,
        "seed": args.seed,
        "variants": rows,
    }
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
