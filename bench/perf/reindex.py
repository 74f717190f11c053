"""Phase 6: re-index throughput, product vs raw ``model.encode``."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from perf.common import K, RssSampler, load_raw_model, make_catalog, ratio, rss_mib, settings_for

log = logging.getLogger("bench.performance")


# --------------------------------------------------------------------------- 6. re-index
def reindex_raw(model_dir: Path, texts: Sequence[str], batch_size: int = 64) -> dict[str, Any]:
    """Raw library: load MiniLM, ``model.encode`` the texts, add them to an ``IndexFlatIP``."""
    import faiss

    with RssSampler() as mem:
        tick = time.perf_counter()
        model = load_raw_model(model_dir)
        load_s = time.perf_counter() - tick
        tick = time.perf_counter()
        vectors = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
        encode_s = time.perf_counter() - tick
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        total_s = time.perf_counter() - tick
    return {
        "items": len(texts),
        "load_seconds": round(load_s, 3),
        "encode_seconds": round(encode_s, 3),
        "index_seconds": round(total_s, 3),
        "items_per_second": round(len(texts) / total_s, 2),
        "peak_rss_mib": round(mem.peak_mib, 1),
        "rss_after_mib": round(rss_mib(), 1),
    }


def reindex_product(storage: Path, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Product: ``EmbedLoop(...)`` then ``add_items`` (store upsert + embed + index + save)."""
    from embedloop import EmbedLoop

    rows = [{"id": i["id"], "text": i["text"]} for i in items]
    with RssSampler() as mem:
        tick = time.perf_counter()
        loop = EmbedLoop(settings_for(storage))
        load_s = time.perf_counter() - tick
        tick = time.perf_counter()
        loop.add_items(rows)
        index_s = time.perf_counter() - tick
        loop.search("warm up query", k=K)
    after = rss_mib()
    loop.close()
    return {
        "items": len(rows),
        "load_seconds": round(load_s, 3),
        "index_seconds": round(index_s, 3),
        "items_per_second": round(len(rows) / index_s, 2),
        "peak_rss_mib": round(mem.peak_mib, 1),
        "rss_after_mib": round(after, 1),
    }


def bench_reindex_interleaved(storage: Path, raw_model: Any, chunk: int, chunks: int) -> dict[str, Any]:
    """Items/s in one process, alternating: ``add_items`` of ``chunk`` new items vs raw ``encode`` of the same texts.

    Alternating chunks share whatever else the machine is doing, which sequential runs in
    separate processes do not.
    """
    from embedloop import EmbedLoop

    items = make_catalog(chunk * chunks, seed=31)
    spent = {"product": 0.0, "raw": 0.0}
    with EmbedLoop(settings_for(storage)) as loop:
        loop.add_items([{"id": "WARM", "text": "WARM - warm-up item"}])
        raw_model.encode(["warm-up"], batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
        for n in range(chunks):
            part = items[n * chunk : (n + 1) * chunk]
            for name in ("product", "raw") if n % 2 == 0 else ("raw", "product"):
                tick = time.perf_counter()
                if name == "product":
                    loop.add_items([{"id": i["id"], "text": i["text"]} for i in part])
                else:
                    raw_model.encode(
                        [i["text"] for i in part], batch_size=64, convert_to_numpy=True, normalize_embeddings=True
                    )
                spent[name] += time.perf_counter() - tick
        total = loop.feedback_stats()["items"]
    n_items = chunk * chunks
    return {
        "chunk": chunk,
        "chunks": chunks,
        "items": n_items,
        "product_items_per_second": round(n_items / spent["product"], 2),
        "raw_items_per_second": round(n_items / spent["raw"], 2),
        "ratio": ratio(spent["raw"], spent["product"]),
        "catalog_after": total,
    }
