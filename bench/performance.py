#!/usr/bin/env python
"""Performance benchmarks: every product figure next to its raw-library baseline, measured in the same run.

Figures (see ``docs/benchmarks.md``):

1. search latency p50 / p99 (``EmbedLoop.search``) vs raw ``SentenceTransformer.encode([q])`` +
   ``faiss.IndexFlatIP.search`` on the same vectors, at each ``--sizes`` catalog size;
2. feedback ingest events/s (``record_feedback`` one at a time, ``record_feedback_batch``) vs raw
   ``sqlite3`` inserts of the same rows into the same schema (WAL);
3. training examples/s (``EmbeddingFineTuner.train``) vs a bare ``SentenceTransformerTrainer`` +
   ``MultipleNegativesRankingLoss`` on the same rows;
4. one full cycle (``loop.fine_tune(force=True)``) on simulated feedback: wall time, its
   ``timings``, peak RSS of serving and of the cycle;
5. search latency while a cycle runs / trains, as a ratio to idle;
6. re-index items/s (``EmbedLoop.add_items`` embedding + indexing) vs raw ``model.encode``.

Usage::

    HF_HUB_OFFLINE=1 nice -n 5 .venv/bin/python bench/performance.py --out bench/results/performance.json
    HF_HUB_OFFLINE=1 nice -n 5 .venv/bin/python bench/performance.py --quick

Catalog sizes that are too large to embed with MiniLM on a small CPU in reasonable time
(``--precompute-above``, default 20,000) get precomputed random unit vectors for the
*catalog* only: the loop is given an encoder that looks catalog texts up in that table and
sends everything else (the queries) to the real MiniLM. Items still go through the public
``add_items`` path (store, change log, index upsert, save); the baseline FAISS index holds
exactly the same vectors. Memory-sensitive phases run in child processes of this script.

Product and baseline always run with the same thread settings: ``--torch-threads 1`` (the
default) sets torch's and FAISS's OpenMP intra-op threads to 1 in this process and its
children. On the 2-vCPU machines this was written on, 2 OpenMP threads make a single-query
encode ~50x slower (the ``threads`` phase measures it); see ``docs/benchmarks.md``.
Re-index throughput is measured twice: 10,000 items in one ``add_items`` call vs one raw
``encode`` (two child processes, also giving peak RSS), and in one process with product and
raw chunks alternating, which cancels drifting load from other processes on the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import psutil  # noqa: E402

log = logging.getLogger("bench.performance")

MODEL = "all-MiniLM-L6-v2"
SCRIPT = Path(__file__).resolve()
K = 10
#: Intra-op torch threads of this process and its children (0: torch's default); see ``--torch-threads``.
_TORCH_THREADS = 0

# --------------------------------------------------------------------------- synthetic catalog
_SYLLABLES = [
    "bra", "nex", "tor", "vel", "qua", "lin", "mar", "zen", "cor", "dyn", "flo", "gra", "hel", "ion", "jov",
    "kal", "lum", "mon", "nor", "ort", "pra", "riv", "sol", "tek", "ul", "ver", "wes", "xan", "yor", "zel",
    "ami", "bel", "cas", "dor", "eno", "fal",
]  # fmt: skip
_SECTORS = [
    "Solar", "Biotech", "Energy", "Financial", "Pharma", "Software", "Mining", "Realty", "Capital", "Motors",
    "Foods", "Networks", "Semiconductor", "Airlines", "Insurance", "Retail", "Logistics", "Health", "Water",
    "Gaming", "Steel", "Shipping", "Media", "Robotics", "Oil & Gas", "Hotels", "Payments", "Cloud", "Medical",
    "Aerospace", "Chemicals", "Apparel", "Beverages", "Telecom", "Utilities", "Semis", "Lithium", "Gold",
]  # fmt: skip
_FORMS = [
    "Holdings Inc.", "Corporation", "Group Ltd.", "Inc.", "Technologies Inc.", "Bancorp", "Partners LP",
    "Trust", "Industries Inc.", "Co.", "Holdings Corp.", "International plc",
]  # fmt: skip
_SECURITIES = [
    "Common Stock", "Common Stock", "Common Stock", "Class A Common Stock", "Class B Common Stock",
    "American Depositary Shares", "Ordinary Shares", "Depositary Shares", "Units", "Warrants",
]  # fmt: skip


def make_catalog(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` unique company-like items: ``{"id", "text", "name", "sector"}``."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    tickers: set[str] = set()
    texts: set[str] = set()
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    while len(out) < n:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3)))).capitalize()
        sector = rng.choice(_SECTORS)
        text_tail = f"{name} {sector} {rng.choice(_FORMS)} {rng.choice(_SECURITIES)}"
        if text_tail in texts:
            continue
        ticker = (name[:2] + sector[0]).upper()
        while ticker in tickers:
            ticker = "".join(rng.choice(letters) for _ in range(rng.choice((3, 4, 4, 5))))
        tickers.add(ticker)
        texts.add(text_tail)
        out.append({"id": ticker, "text": f"{ticker} - {text_tail}", "name": name, "sector": sector})
    return out


def make_query(item: dict[str, Any], rng: random.Random) -> str:
    """A user phrasing for ``item``: its name words shuffled, abbreviated or its ticker."""
    name, sector, ticker = item["name"].lower(), item["sector"].lower(), item["id"].lower()
    pattern = rng.randrange(6)
    if pattern == 0:
        return f"{name} {sector} stock"
    if pattern == 1:
        return f"{sector} company {name} shares"
    if pattern == 2:
        return f"{ticker} share price"
    if pattern == 3:
        return f"{name[:4]} {sector} equity"
    if pattern == 4:
        return f"buy {name} stock"
    return f"{name} {sector} quote"


def random_unit_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """``n`` random float32 unit vectors of length ``dim``."""
    vectors = np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


class LookupEncoder:
    """Catalog texts from a precomputed table; anything else (queries) from the real encoder."""

    def __init__(self, real: Any, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.real = real
        self.table = {t: i for i, t in enumerate(texts)}
        self.vectors = vectors

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        rows = [self.table.get(t) for t in texts]
        if all(r is not None for r in rows):
            return self.vectors[np.asarray(rows, dtype=np.int64)] if rows else self.vectors[:0]
        return self.real.encode(texts, batch_size=batch_size, show_progress=show_progress)


# --------------------------------------------------------------------------- measurement helpers
class RssSampler:
    """Peak resident memory of this process, sampled in a thread (psutil)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    def reset(self) -> None:
        self.peak = self.proc.memory_info().rss

    @property
    def peak_mib(self) -> float:
        return self.peak / 2**20


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def summarise_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean in milliseconds."""
    if not seconds:
        return {"n": 0}
    arr = np.asarray(seconds) * 1000.0
    return {
        "n": len(arr),
        "p50_ms": round(float(np.percentile(arr, 50)), 3),
        "p90_ms": round(float(np.percentile(arr, 90)), 3),
        "p99_ms": round(float(np.percentile(arr, 99)), 3),
        "mean_ms": round(float(arr.mean()), 3),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def settings_for(storage: Path, **overrides: Any) -> Any:
    from embedloop import Settings

    return Settings(storage_path=storage, embedding_model=MODEL, show_progress=False, **overrides)


def model_path(cache: Path) -> Path:
    """The local folder of MiniLM, resolved the way the product does it."""
    from embedloop.models import resolve_model

    return resolve_model(MODEL, cache)


def load_raw_model(path: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    model.max_seq_length = min(model.max_seq_length or 128, 128)  # as the product's default max_seq_length
    return model


def machine_info() -> dict[str, Any]:
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import faiss
    import sentence_transformers
    import sqlalchemy
    import transformers

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "faiss": faiss.__version__,
        "sqlalchemy": sqlalchemy.__version__,
        "sqlite": sqlite3.sqlite_version,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "nice": os.nice(0),
    }


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
    for _ in range(events):
        item = rng.choice(popular)
        q = make_query(item, rng)
        resp = loop.search(q, k=K)
        shown = [h.item_id for h in resp.hits]
        if item["id"] in shown:
            loop.record_selection(resp.search_id, item["id"])
            in_top += 1
        else:
            loop.record_feedback(q, shown=shown[: K - 1] + [item["id"]], selected=[item["id"]])
            outside += 1
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


# --------------------------------------------------------------------------- 3. training throughput
def training_examples(items: Sequence[dict[str, Any]], n: int, negatives: int = 2, seed: int = 3) -> tuple[list, dict]:
    """``n`` examples: a derived query, its item, ``negatives`` items of the same sector (hard-ish)."""
    from embedloop.training.examples import TrainingExample

    rng = random.Random(seed)
    by_sector: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_sector.setdefault(item["sector"], []).append(item)
    chosen = rng.sample(list(items), min(n, len(items)))
    examples = []
    for item in chosen:
        pool = [x["id"] for x in by_sector[item["sector"]] if x["id"] != item["id"]] or [
            x["id"] for x in items if x["id"] != item["id"]
        ]
        examples.append(TrainingExample(make_query(item, rng), item["id"], rng.sample(pool, min(negatives, len(pool)))))
    return examples, {i["id"]: i["text"] for i in items}


def train_product(model_dir: Path, examples: list, texts: dict, settings: Any, out: Path) -> dict[str, Any]:
    from embedloop.training.finetuner import EmbeddingFineTuner

    tick = time.perf_counter()
    result = EmbeddingFineTuner(settings).train(model_dir, examples, texts, out)
    wall = time.perf_counter() - tick
    return {"rows": result.rows, "steps": result.steps, "train_seconds": result.seconds, "wall_seconds": wall}


def train_bare(model_dir: Path, examples: list, texts: dict, settings: Any, out: Path) -> dict[str, Any]:
    """A bare sentence-transformers run on the same rows (same batch size, epochs, seed, learning rate)."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from embedloop.training.finetuner import feedback_rows

    tick = time.perf_counter()
    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    model.max_seq_length = min(model.max_seq_length or 128, settings.max_seq_length)
    columns = feedback_rows(examples, texts, settings.loss, settings.hard_negatives)
    rows = len(columns["anchor"])
    scratch = Path(tempfile.mkdtemp(prefix="bench-bare-"))
    args = SentenceTransformerTrainingArguments(
        output_dir=str(scratch),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=min(settings.train_batch_size, rows),
        learning_rate=settings.learning_rate,
        seed=settings.seed,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=MultipleNegativesRankingLoss(model)
    )
    start = time.perf_counter()
    output = trainer.train()
    train_s = time.perf_counter() - start
    model.save(str(out))
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "rows": rows * settings.epochs,
        "steps": int(output.global_step),
        "train_seconds": train_s,
        "wall_seconds": time.perf_counter() - tick,
    }


def bench_training(model_dir: Path, n: int, work: Path, repeats: int = 2, seed: int = 3) -> dict[str, Any]:
    """Product vs bare trainer on the same ``n`` rows, alternating (bare, product, product, bare, ...)."""
    items = make_catalog(max(2000, n * 2), seed=seed)
    examples, texts = training_examples(items, n, seed=seed)
    settings = settings_for(work / "train-settings")
    runs: dict[str, list[dict[str, Any]]] = {"product": [], "bare": []}
    for rep in range(repeats):
        order = ("bare", "product") if rep % 2 == 0 else ("product", "bare")
        for name in order:
            out = work / f"train-{name}-{rep}"
            fn = train_product if name == "product" else train_bare
            res = fn(model_dir, examples, texts, settings, out)
            shutil.rmtree(out, ignore_errors=True)
            log.info(
                "training %s rep %d: %d rows, %.1f s train, %.1f s wall",
                name,
                rep,
                res["rows"],
                res["train_seconds"],
                res["wall_seconds"],
            )
            runs[name].append(res)

    def rate(name: str, key: str) -> float:
        return sum(r["rows"] for r in runs[name]) / sum(r[key] for r in runs[name])

    out: dict[str, Any] = {
        "examples": len(examples),
        "rows": runs["product"][0]["rows"],
        "repeats": repeats,
        "batch_size": settings.train_batch_size,
        "epochs": settings.epochs,
        "loss": settings.loss.value,
        "hard_negatives": settings.hard_negatives,
        "runs": {k: [{kk: round(vv, 3) for kk, vv in r.items()} for r in v] for k, v in runs.items()},
    }
    for key in ("train_seconds", "wall_seconds"):
        label = "train_loop" if key == "train_seconds" else "end_to_end"
        out[f"product_{label}_rows_per_second"] = round(rate("product", key), 2)
        out[f"bare_{label}_rows_per_second"] = round(rate("bare", key), 2)
        out[f"{label}_ratio"] = ratio(rate("product", key), rate("bare", key))
    return out


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


# --------------------------------------------------------------------------- workers (child processes)
def set_torch_threads(n: int | None) -> None:
    """Intra-op threads of torch and of FAISS's OpenMP in this process (``None`` / 0: their defaults)."""
    if n:
        import faiss
        import torch

        torch.set_num_threads(n)
        faiss.omp_set_num_threads(n)


def bench_threads(model_dir: Path, threads: int | None, queries_n: int = 40) -> dict[str, Any]:
    """Raw single-query encode latency with 1 intra-op thread vs torch's default.

    Blocks of queries alternate (1, default, 1, default), each after a short warm-up, since
    changing the thread count between single calls would itself cost time.
    """
    import torch

    model = load_raw_model(model_dir)
    default = max(2, os.cpu_count() or 2)
    rng = random.Random(4)
    items = make_catalog(200, seed=4)
    queries = [make_query(rng.choice(items), rng) for _ in range(queries_n)]
    wall: dict[int, list[float]] = {1: [], default: []}
    cpu: dict[int, list[float]] = {1: [], default: []}
    half = max(1, queries_n // 2)
    try:
        for block, t in enumerate((1, default, 1, default)):
            torch.set_num_threads(t)
            for q in queries[:3]:
                model.encode([q], convert_to_numpy=True, normalize_embeddings=True)
            for q in queries[(block // 2) * half : (block // 2 + 1) * half]:
                tick, tock = time.perf_counter(), time.process_time()
                model.encode([q], convert_to_numpy=True, normalize_embeddings=True)
                wall[t].append(time.perf_counter() - tick)
                cpu[t].append(time.process_time() - tock)
    finally:
        set_torch_threads(threads or default)
    one, many = summarise_ms(wall[1]), summarise_ms(wall[default])
    return {
        "default_threads": default,
        "one_thread": one,
        "default": many,
        "one_thread_cpu_p50_ms": summarise_ms(cpu[1]).get("p50_ms"),
        "default_cpu_p50_ms": summarise_ms(cpu[default]).get("p50_ms"),
        "p50_ratio_default_to_one": ratio(many.get("p50_ms"), one.get("p50_ms")),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def _run_worker(name: str, args_file: Path, out_file: Path) -> None:
    args = json.loads(args_file.read_text())
    items = [json.loads(line) for line in Path(args["items"]).read_text().splitlines()]
    if name == "reindex_raw":
        result = reindex_raw(Path(args["model_dir"]), [i["text"] for i in items])
    elif name == "reindex_product":
        result = reindex_product(Path(args["storage"]), items)
    elif name == "cycle":
        result = run_cycle_bench(Path(args["storage"]), items, args["idle_searches"], args["interval"])
    else:
        raise SystemExit(f"unknown worker {name!r}")
    out_file.write_text(json.dumps(result))


def in_child(name: str, work: Path, **args: Any) -> dict[str, Any]:
    """Run a worker in a fresh interpreter (clean memory figures); returns its JSON result."""
    args_file, out_file = work / f"{name}.args.json", work / f"{name}.out.json"
    args_file.write_text(json.dumps(args, default=str))
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--worker",
        name,
        "--worker-args",
        str(args_file),
        "--worker-out",
        str(out_file),
        "--torch-threads",
        str(_TORCH_THREADS),
    ]
    log.info("child process: %s", name)
    subprocess.run(cmd, check=True)
    return json.loads(out_file.read_text())


# --------------------------------------------------------------------------- the run
def run(opts: argparse.Namespace) -> dict[str, Any]:
    phases = set(opts.phases.split(","))
    work = Path(tempfile.mkdtemp(prefix="embedloop-bench-", dir=opts.workdir))
    results: dict[str, Any] = {
        "machine": machine_info(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "options": vars(opts),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    started = time.perf_counter()
    try:
        model_dir = model_path(work / "model-cache")
        sizes = [int(s) for s in opts.sizes.split(",") if s]
        cycle_size = opts.cycle_items
        storage10 = work / f"loop-{cycle_size}"
        items = make_catalog(cycle_size, seed=0)
        items_file = work / "items.jsonl"
        items_file.write_text("".join(json.dumps(i) + "\n" for i in items))
        if "threads" in phases:
            log.info("single-query encode: 1 torch thread vs the default")
            results["threads"] = bench_threads(model_dir, opts.torch_threads)

        if phases & {"reindex", "search", "cycle"}:
            raw_one = None
            if "reindex" in phases:
                log.info("re-index: raw encode of %d texts in a child process", cycle_size)
                raw_one = in_child("reindex_raw", work, model_dir=model_dir, items=items_file)
            log.info("re-index: EmbedLoop.add_items of %d items in a child process", cycle_size)
            prod_one = in_child("reindex_product", work, storage=storage10, items=items_file)
            if raw_one is not None:
                results["reindex"] = {
                    "items": cycle_size,
                    "one_call": {
                        "product": prod_one,
                        "raw": raw_one,
                        "ratio": ratio(prod_one["items_per_second"], raw_one["items_per_second"]),
                    },
                    "serving_peak_rss_ratio": ratio(prod_one["peak_rss_mib"], raw_one["peak_rss_mib"]),
                }

        raw_model = load_raw_model(model_dir) if phases & {"search", "cycle", "reindex"} else None
        if "reindex" in phases:
            log.info("re-index: %d x %d items, product and raw interleaved", opts.reindex_chunks, opts.reindex_chunk)
            results["reindex"]["interleaved"] = bench_reindex_interleaved(
                work / "reindex-interleaved", raw_model, opts.reindex_chunk, opts.reindex_chunks
            )
            results["reindex"]["ratio"] = results["reindex"]["interleaved"]["ratio"]
        if "search" in phases or "cycle" in phases:
            from embedloop import EmbedLoop

            with EmbedLoop(settings_for(storage10)) as loop:
                if "search" in phases and cycle_size in sizes:
                    raw_index, raw_ids = raw_index_like(loop)
                    rng = random.Random(1)
                    queries = [make_query(rng.choice(items), rng) for _ in range(opts.queries + opts.warmup)]
                    log.info("search latency at %d items (MiniLM-embedded catalog)", cycle_size)
                    res = bench_search(loop, raw_model, raw_index, raw_ids, queries, opts.warmup)
                    res["catalog_vectors"] = "MiniLM embeddings via add_items"
                    results.setdefault("search", {})[str(cycle_size)] = res
                if "cycle" in phases:
                    log.info("simulating %d feedback events", opts.feedback_events)
                    results["feedback_simulation"] = simulate_feedback(loop, items, opts.feedback_events)
            if "cycle" in phases:
                log.info("one full cycle (child process) with paced searches alongside")
                results["cycle"] = in_child(
                    "cycle", work, storage=storage10, items=items_file, idle_searches=opts.idle_searches, interval=0.1
                )

        if "train" in phases:
            log.info("training throughput: %d examples, %d runs each", opts.train_examples, opts.train_repeats)
            results["training"] = bench_training(model_dir, opts.train_examples, work, repeats=opts.train_repeats)

        if "search" in phases:
            for size in sizes:
                if size == cycle_size:
                    continue
                if size <= opts.precompute_above:
                    raise SystemExit(f"size {size}: only --cycle-items or sizes above --precompute-above are supported")
                log.info("search latency at %d items (precomputed catalog vectors)", size)
                results.setdefault("search", {})[str(size)] = search_at_size_precomputed(
                    size, work / f"loop-{size}", model_dir, raw_model, opts.queries, opts.warmup
                )

        if "ingest" in phases:
            log.info("feedback ingest")
            results["ingest"] = bench_ingest(
                work / "ingest", model_dir, opts.ingest_items, opts.single_events, opts.batch_size, opts.batches
            )
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


# --------------------------------------------------------------------------- report
def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        x = f"{x:,.3f}" if abs(x) < 10 else f"{x:,.1f}"
    return f"{x}{unit}"


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """``(figure, product, baseline, ratio, target, met)`` rows."""
    rows: list[tuple[str, str, str, str, str, str]] = []

    def met(ok: bool | None) -> str:
        return "-" if ok is None else ("yes" if ok else "NO")

    for size, s in (results.get("search") or {}).items():
        for p in ("p50", "p99"):
            r = s[f"{p}_ratio"]
            target = "<= 1.15x" if p == "p50" else "-"
            ok = (r is not None and r <= 1.15) if p == "p50" else None
            rows.append(
                (
                    f"search {p} @ {int(size):,} items",
                    _fmt(s["product"][f"{p}_ms"], " ms"),
                    _fmt(s["raw"][f"{p}_ms"], " ms"),
                    _fmt(r, "x"),
                    target,
                    met(ok),
                )
            )
    ing = results.get("ingest")
    if ing:
        b, s = ing["batch"], ing["single"]
        rows.append(
            (
                f"ingest batch ({b['batch_size']}/call), events/s",
                _fmt(b["product_events_per_second"]),
                _fmt(b["raw_events_per_second"]),
                _fmt(b["ratio"], "x"),
                ">= 0.5x",
                met(b["ratio"] is not None and b["ratio"] >= 0.5),
            )
        )
        rows.append(
            (
                "ingest single, events/s",
                _fmt(s["product_events_per_second"]),
                _fmt(s["raw_events_per_second"]) + " (1 txn/event)",
                _fmt(s["ratio"], "x"),
                ">= 2,000/s",
                met(s["product_events_per_second"] >= 2000),
            )
        )
        rows.append(
            (
                "ingest batch, events per CPU-second",
                _fmt(b["product_events_per_cpu_second"]),
                _fmt(b["raw_events_per_cpu_second"]),
                _fmt(b["cpu_ratio"], "x"),
                ">= 0.5x",
                met(b["cpu_ratio"] is not None and b["cpu_ratio"] >= 0.5),
            )
        )
        rows.append(
            (
                "ingest single, events per CPU-second",
                _fmt(s["product_events_per_cpu_second"]),
                _fmt(s["raw_events_per_cpu_second"]) + " (1 txn/event)",
                _fmt(s["cpu_ratio"], "x"),
                ">= 2,000/s",
                met(s["product_events_per_cpu_second"] >= 2000),
            )
        )
    tr = results.get("training")
    if tr:
        rows.append(
            (
                "training rows/s (trainer.train)",
                _fmt(tr["product_train_loop_rows_per_second"]),
                _fmt(tr["bare_train_loop_rows_per_second"]),
                _fmt(tr["train_loop_ratio"], "x"),
                ">= 0.9x",
                met(tr["train_loop_ratio"] is not None and tr["train_loop_ratio"] >= 0.9),
            )
        )
        rows.append(
            (
                "training rows/s (load..save)",
                _fmt(tr["product_end_to_end_rows_per_second"]),
                _fmt(tr["bare_end_to_end_rows_per_second"]),
                _fmt(tr["end_to_end_ratio"], "x"),
                ">= 0.9x",
                met(tr["end_to_end_ratio"] is not None and tr["end_to_end_ratio"] >= 0.9),
            )
        )
    cy = results.get("cycle")
    if cy:
        t = cy["timings"]
        parts = ", ".join(f"{k.replace('_seconds', '')} {v:.0f}" for k, v in t.items())
        rows.append(
            (
                f"cycle wall ({results.get('feedback_simulation', {}).get('events', '?')} events), s",
                _fmt(cy["wall_seconds"]) + f" [{parts}] {cy['status']}",
                "-",
                "-",
                "< 300 s",
                met(cy["wall_seconds"] < 300),
            )
        )
        rows.append(
            (
                "search p50 during training / idle",
                _fmt(cy["search_during_training"].get("p50_ms"), " ms"),
                _fmt(cy["search_idle"].get("p50_ms"), " ms"),
                _fmt(cy["during_training_p50_ratio"], "x"),
                "-",
                "-",
            )
        )
        rows.append(
            (
                "search p50 during whole cycle / idle",
                _fmt(cy["search_during_cycle"].get("p50_ms"), " ms"),
                _fmt(cy["search_idle"].get("p50_ms"), " ms"),
                _fmt(cy["during_cycle_p50_ratio"], "x"),
                "-",
                "-",
            )
        )
        rows.append(
            (
                "peak RSS cycle, MiB",
                _fmt(cy["cycle_peak_rss_mib"]),
                _fmt(cy["rss_before_cycle_mib"]) + " (serving)",
                _fmt(ratio(cy["cycle_peak_rss_mib"], cy["rss_before_cycle_mib"]), "x"),
                "-",
                "-",
            )
        )
    ri = results.get("reindex")
    if ri:
        inter = ri.get("interleaved")
        if inter:
            rows.append(
                (
                    f"re-index items/s ({inter['chunks']}x{inter['chunk']:,} interleaved)",
                    _fmt(inter["product_items_per_second"]),
                    _fmt(inter["raw_items_per_second"]),
                    _fmt(inter["ratio"], "x"),
                    "-",
                    "-",
                )
            )
        one = ri["one_call"]
        rows.append(
            (
                f"re-index items/s ({ri['items']:,} in one call, 2 processes)",
                _fmt(one["product"]["items_per_second"]),
                _fmt(one["raw"]["items_per_second"]),
                _fmt(one["ratio"], "x"),
                "-",
                "-",
            )
        )
        rows.append(
            (
                "peak RSS serving (load+index), MiB",
                _fmt(one["product"]["peak_rss_mib"]),
                _fmt(one["raw"]["peak_rss_mib"]),
                _fmt(ri["serving_peak_rss_ratio"], "x"),
                "-",
                "-",
            )
        )
    th = results.get("threads")
    if th:
        rows.append(
            (
                f"raw query encode p50, {th['default_threads']} threads",
                _fmt(th["default"].get("p50_ms"), " ms"),
                _fmt(th["one_thread"].get("p50_ms"), " ms") + " (1 thread)",
                _fmt(th["p50_ratio_default_to_one"], "x"),
                "-",
                "-",
            )
        )
    return rows


def render_table(results: dict[str, Any]) -> str:
    header = ("figure", "embedloop", "raw baseline", "ratio", "target", "met")
    rows = [header, *table_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a small smoke run (well under 3 minutes)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the JSON goes (bench/results/performance.json; --quick: bench/results/performance-quick.json)",
    )
    p.add_argument("--sizes", default=None, help="catalog sizes for search latency (default 10000,100000)")
    p.add_argument(
        "--phases", default="threads,reindex,search,cycle,train,ingest", help="comma-separated subset to run"
    )
    p.add_argument("--cycle-items", type=int, default=None, help="catalog embedded with MiniLM for the cycle (10000)")
    p.add_argument("--feedback-events", type=int, default=None, help="simulated feedback events for the cycle (1000)")
    p.add_argument("--queries", type=int, default=None, help="measured queries per size (300)")
    p.add_argument("--warmup", type=int, default=20, help="warm-up queries per size, not counted")
    p.add_argument("--idle-searches", type=int, default=None, help="paced idle searches before the cycle (100)")
    p.add_argument("--train-examples", type=int, default=None, help="examples for the training comparison (512)")
    p.add_argument("--train-repeats", type=int, default=None, help="runs per side, alternating (2)")
    p.add_argument("--ingest-items", type=int, default=10_000, help="catalog size for the ingest benchmark")
    p.add_argument("--single-events", type=int, default=None, help="events logged one at a time (2000)")
    p.add_argument("--batch-size", type=int, default=1000, help="events per record_feedback_batch call")
    p.add_argument("--batches", type=int, default=None, help="batch calls (5)")
    p.add_argument("--precompute-above", type=int, default=20_000, help="sizes above this get precomputed vectors")
    p.add_argument("--reindex-chunk", type=int, default=None, help="items per interleaved re-index chunk (1000)")
    p.add_argument("--reindex-chunks", type=int, default=None, help="interleaved re-index chunks per side (5)")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads for product and baseline alike (0: torch's default); see docs/benchmarks.md",
    )
    p.add_argument("--workdir", default=None, help="parent folder for temporary storage")
    p.add_argument("--keep", action="store_true", help="keep the temporary storage")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-args", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    full = {
        "sizes": "10000,100000",
        "cycle_items": 10_000,
        "feedback_events": 1000,
        "queries": 300,
        "idle_searches": 100,
        "train_examples": 512,
        "train_repeats": 2,
        "single_events": 2000,
        "batches": 5,
        "reindex_chunk": 1000,
        "reindex_chunks": 5,
    }
    quick = {
        "sizes": "1000",
        "cycle_items": 1000,
        "feedback_events": 150,
        "queries": 60,
        "idle_searches": 30,
        "train_examples": 64,
        "train_repeats": 1,
        "single_events": 300,
        "batches": 2,
        "reindex_chunk": 200,
        "reindex_chunks": 2,
    }
    for key, value in (quick if opts.quick else full).items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    if opts.out is None:
        opts.out = Path("bench/results/performance-quick.json" if opts.quick else "bench/results/performance.json")
    if opts.quick:
        opts.ingest_items = min(opts.ingest_items, 1000)
        opts.batch_size = min(opts.batch_size, 300)
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("sentence_transformers", "transformers", "httpx", "alembic", "datasets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    opts = parse_args(argv)
    global _TORCH_THREADS
    _TORCH_THREADS = opts.torch_threads
    set_torch_threads(opts.torch_threads)
    if opts.worker:
        _run_worker(opts.worker, opts.worker_args, opts.worker_out)
        return 0
    results = run(opts)
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    sys.stdout.write(render_table(results))
    sys.stdout.write(f"\nresults: {opts.out} ({results['total_seconds']:.0f} s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
