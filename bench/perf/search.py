"""Phase 1: search latency, product vs encode + raw FAISS."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from perf.common import (
    K,
    LookupEncoder,
    make_catalog,
    make_query,
    random_unit_vectors,
    ratio,
    settings_for,
    summarise_ms,
)

log = logging.getLogger("bench.performance")


# --------------------------------------------------------------------------- 1. search latency
def raw_index_like(loop: Any) -> tuple[Any, list[str]]:
    """A plain ``IndexFlatIP`` over exactly the vectors the loop's index holds, and their item ids."""
    import faiss

    state = loop.searcher.state
    keys = [int(k) for k in state.index.keys()]
    vectors = state.index.vectors(keys)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, [state.items[k][0] for k in keys]


def bench_search(
    loop: Any, raw_model: Any, raw_index: Any, raw_ids: Sequence[str], queries: Sequence[str], warmup: int = 20
) -> dict[str, Any]:
    """Interleaved product / raw latencies over ``queries`` (the first ``warmup`` not counted)."""

    def raw(q: str) -> str:
        vector = raw_model.encode([q], convert_to_numpy=True, normalize_embeddings=True)
        _scores, ids = raw_index.search(np.ascontiguousarray(vector, dtype=np.float32), K)
        return raw_ids[int(ids[0][0])]

    def product(q: str) -> str:
        return loop.search(q, k=K).hits[0].item_id

    for q in queries[:warmup]:
        product(q)
        raw(q)
    times: dict[str, list[float]] = {"product": [], "raw": []}
    agree = 0
    measured = queries[warmup:]
    for n, q in enumerate(measured):
        order = (("product", product), ("raw", raw)) if n % 2 == 0 else (("raw", raw), ("product", product))
        top: dict[str, str] = {}
        for name, fn in order:
            tick = time.perf_counter()
            top[name] = fn(q)
            times[name].append(time.perf_counter() - tick)
        agree += top["product"] == top["raw"]
    prod, base = summarise_ms(times["product"]), summarise_ms(times["raw"])
    return {
        "items": int(raw_index.ntotal),
        "queries": len(measured),
        "warmup": warmup,
        "product": prod,
        "raw": base,
        "p50_ratio": ratio(prod.get("p50_ms"), base.get("p50_ms")),
        "p99_ratio": ratio(prod.get("p99_ms"), base.get("p99_ms")),
        "top1_agreement": round(agree / max(1, len(measured)), 4),
        # per query, product minus raw (same query, back to back): the product's own cost
        "overhead_p50_ms": round(
            float(np.median(np.subtract(times["product"], times["raw"]))) * 1000.0 if measured else 0.0, 3
        ),
    }


def search_at_size_precomputed(
    size: int, storage: Path, model_dir: Path, raw_model: Any, queries_n: int, warmup: int, seed: int = 0
) -> dict[str, Any]:
    """Search latency at ``size`` items whose catalog vectors are precomputed (see the module docstring)."""
    from embedloop import EmbedLoop
    from embedloop.models.encoder import SentenceTransformerEncoder

    items = make_catalog(size, seed=seed)
    texts = [i["text"] for i in items]
    real = SentenceTransformerEncoder.load(model_dir, max_seq_length=128)
    vectors = random_unit_vectors(size, real.dimension, seed=seed)
    encoder = LookupEncoder(real, texts, vectors)
    with EmbedLoop(settings_for(storage), encoder=encoder) as loop:
        tick = time.perf_counter()
        loop.add_items([{"id": i["id"], "text": i["text"]} for i in items])
        add_s = time.perf_counter() - tick
        log.info("%d items added through add_items with precomputed vectors in %.1f s", size, add_s)
        raw_index, raw_ids = raw_index_like(loop)
        rng = random.Random(seed + 1)
        queries = [make_query(rng.choice(items), rng) for _ in range(queries_n + warmup)]
        result = bench_search(loop, raw_model, raw_index, raw_ids, queries, warmup)
    result["catalog_vectors"] = "precomputed random unit vectors (queries encoded by MiniLM)"
    result["add_items_seconds"] = round(add_s, 2)
    return result
