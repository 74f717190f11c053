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

Each phase lives in its own module under ``bench/perf/`` (``search``, ``ingest``, ``training``,
``cycle``, ``reindex``; shared helpers in ``common``, the table in ``report``); this script
parses the options, runs the phases (memory-sensitive ones in child processes) and writes
the results.

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
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/perf, also when loaded by path
from perf.common import (  # noqa: E402
    load_raw_model,
    machine_info,
    make_catalog,
    make_query,
    model_path,
    ratio,
    settings_for,
    summarise_ms,
)
from perf.cycle import run_cycle_bench, simulate_feedback  # noqa: E402
from perf.ingest import bench_ingest  # noqa: E402
from perf.reindex import bench_reindex_interleaved, reindex_product, reindex_raw  # noqa: E402
from perf.report import render_table  # noqa: E402
from perf.search import bench_search, raw_index_like, search_at_size_precomputed  # noqa: E402
from perf.training import bench_training  # noqa: E402

log = logging.getLogger("bench.performance")

SCRIPT = Path(__file__).resolve()
#: Intra-op torch threads of this process and its children (0: torch's default); see ``--torch-threads``.
_TORCH_THREADS = 0


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
