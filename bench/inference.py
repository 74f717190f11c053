#!/usr/bin/env python
"""Inference backends (issue 15): onnx and onnx-int8 as ratios to torch, measured in one run.

Figures (see ``docs/inference.md``):

1. query encode p50 / p99 per backend (one query at a time, backends interleaved query by query);
2. search p50 / p99 through ``EmbedLoop.search`` at each ``--sizes`` catalog size: one index of
   precomputed random unit vectors (as ``bench/performance.py`` does above 20,000 items), the
   query encoded by the backend under test, backends interleaved search by search;
3. catalog embedding items/s: short texts from the packaged securities catalog and SciFact
   abstracts (``title. text``, cut at 128 tokens like the product), backends interleaved chunk by chunk;
4. export + quantisation time and size on disk (what a promotion adds), with the export's
   agreement (smallest cosine to torch on the probe texts);
5. ``--quality``: dev NDCG@10 / MRR@10 / Recall@100 per backend on SciFact and NFCorpus
   (``--quality-datasets``), for the base model and for a version fine-tuned on
   ``--fine-tune-pairs`` judged train pairs, exported like a promoted version
   (``--quality-docs`` limits the corpus, keeping every judged document); each backend's change
   against torch comes with its paired standard error over the dev queries;
6. ``--mpnet``: all-mpnet-base-v2 on onnx-int8 vs MiniLM on torch (catalog items/s, query p50):
   whether the spec's default model fits the demo's budget.

Every backend runs with one intra-op thread (torch, FAISS and ONNX Runtime), as
``bench/performance.py`` does on the shared 2-core machines; ratios, not absolute times, are the result.

Usage::

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/inference.py --out bench/results/inference.json
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/inference.py --sizes 10000 --queries 60 --quality --mpnet
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

log = logging.getLogger("bench.inference")
HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data"
SCIFACT = DATA / "scifact"
BACKENDS = ("torch", "onnx", "onnx-int8")
MAX_SEQ = 128


def _performance_module() -> Any:
    """``bench/perf/common.py`` (synthetic catalog, lookup encoder, summaries) with ``set_torch_threads``."""
    sys.path.insert(0, str(HERE))  # bench/perf, also when this file is loaded by path
    from perf import common

    spec = importlib.util.spec_from_file_location("bench_performance", HERE / "performance.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    common.set_torch_threads = module.set_torch_threads  # type: ignore[attr-defined]
    return common


perf = _performance_module()


def load_encoders(model: str, work: Path, backends: Sequence[str] = BACKENDS) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each backend's encoder for ``model`` (exports built here, timed) and the export records."""
    from sentence_transformers import SentenceTransformer

    from embedloop.models import resolve_model
    from embedloop.models.encoder import SentenceTransformerEncoder
    from embedloop.models.onnx_backend import OnnxEncoder
    from embedloop.registry.exports import FILES, build_export
    from embedloop.settings import InferenceBackend

    path = resolve_model(model, work / "cache")
    torch_model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    encoders: dict[str, Any] = {}
    records: dict[str, Any] = {
        "torch_weights_bytes": sum(p.stat().st_size for p in path.rglob("*.safetensors")),
    }
    for backend in backends:
        if backend == "torch":
            encoders[backend] = SentenceTransformerEncoder.load(path, max_seq_length=MAX_SEQ)
            continue
        folder = work / f"export-{model}-{backend}"
        record = build_export(path, folder, backend, torch_model=torch_model)
        records[backend] = {k: record[k] for k in ("bytes", "export_seconds", "agreement")}
        encoders[backend] = OnnxEncoder.load(
            folder, FILES[InferenceBackend(backend)], threads=1, max_seq_length=MAX_SEQ, backend=backend
        )
        log.info("%s %s export: %.1f MB in %.1f s", model, backend, record["bytes"] / 1e6, record["export_seconds"])
    return encoders, records


def interleaved(calls: dict[str, Callable[[Any], Any]], inputs: Sequence[Any], warmup: int) -> dict[str, list[float]]:
    """Seconds per call for each name, the names' order rotating input by input (drifting load cancels)."""
    names = list(calls)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i, x in enumerate(inputs):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            tick = time.perf_counter()
            calls[name](x)
            if i >= warmup:
                times[name].append(time.perf_counter() - tick)
    return times


def latency_table(times: dict[str, list[float]]) -> dict[str, Any]:
    """p50/p99 per backend and each one's ratio to torch (``speedup``: torch time / backend time)."""
    out: dict[str, Any] = {name: perf.summarise_ms(t) for name, t in times.items()}
    for name in times:
        if name != "torch":
            out[name]["p50_speedup"] = perf.ratio(out["torch"]["p50_ms"], out[name]["p50_ms"])
            out[name]["p99_speedup"] = perf.ratio(out["torch"]["p99_ms"], out[name]["p99_ms"])
    return out


def bench_query_encode(encoders: dict[str, Any], queries: Sequence[str], warmup: int) -> dict[str, Any]:
    calls = {name: (lambda q, e=e: e.encode_query([q])) for name, e in encoders.items()}
    return latency_table(interleaved(calls, queries, warmup))


class SwitchEncoder(perf.LookupEncoder):  # type: ignore[misc, name-defined]
    """Catalog texts from a precomputed table; queries through whichever backend is selected."""

    def __init__(self, encoders: dict[str, Any], texts: Sequence[str], vectors: np.ndarray) -> None:
        super().__init__(encoders["torch"], texts, vectors)
        self.encoders = encoders

    def use(self, backend: str) -> None:
        self.real = self.encoders[backend]

    def encode_query(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        return self.real.encode_query(texts, batch_size=batch_size)


def bench_search(encoders: dict[str, Any], size: int, queries_n: int, warmup: int, work: Path) -> dict[str, Any]:
    import random

    from embedloop import EmbedLoop

    items = perf.make_catalog(size, seed=0)
    texts = [i["text"] for i in items]
    switch = SwitchEncoder(encoders, texts, perf.random_unit_vectors(size, encoders["torch"].dimension, seed=0))
    storage = Path(tempfile.mkdtemp(prefix=f"search-{size}-", dir=work))
    with EmbedLoop(perf.settings_for(storage), encoder=switch) as loop:
        tick = time.perf_counter()
        loop.add_items([{"id": i["id"], "text": i["text"]} for i in items])
        log.info("%d items added in %.1f s", size, time.perf_counter() - tick)
        rng = random.Random(1)
        queries = [perf.make_query(rng.choice(items), rng) for _ in range(queries_n + warmup)]

        def searcher(backend: str) -> Callable[[str], Any]:
            def run(q: str) -> Any:
                switch.use(backend)
                return loop.search(q, k=perf.K)

            return run

        times = interleaved({b: searcher(b) for b in encoders}, queries, warmup)
    return {"items": size, **latency_table(times)}


def catalog_texts(n: int) -> list[str]:
    from embedloop.catalog.demo import iter_demo_catalog

    return [row["text"] for row in itertools.islice(iter_demo_catalog(), n)]


def scifact_texts(n: int) -> list[str]:
    out = []
    with (SCIFACT / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            out.append(f"{row.get('title', '').strip()}. {row.get('text', '').strip()}")
            if len(out) >= n:
                break
    return out


def bench_throughput(encoders: dict[str, Any], texts: Sequence[str], chunk: int = 128) -> dict[str, Any]:
    """Items/s per backend over ``texts`` in chunks of ``chunk`` (batch size 64, as the product embeds)."""
    chunks = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    calls = {name: (lambda c, e=e: e.encode(c, batch_size=64)) for name, e in encoders.items()}
    times = interleaved(calls, chunks, warmup=1)
    counted = sum(len(c) for c in chunks[1:])
    out: dict[str, Any] = {"items": counted}
    for name, t in times.items():
        out[name] = {"items_per_s": round(counted / sum(t), 1) if t else None}
    for name in times:
        if name != "torch" and "torch" in out:
            out[name]["speedup"] = perf.ratio(out[name]["items_per_s"], out["torch"]["items_per_s"])
    return out


def export_encoders(model_dir: Path, work: Path, tag: str, torch_model: Any | None = None) -> dict[str, Any]:
    """torch, onnx and onnx-int8 encoders of the model at ``model_dir`` (exports built under ``work``)."""
    from embedloop.models.encoder import SentenceTransformerEncoder
    from embedloop.models.onnx_backend import OnnxEncoder
    from embedloop.registry.exports import FILES, build_export
    from embedloop.settings import InferenceBackend

    encoders: dict[str, Any] = {"torch": SentenceTransformerEncoder.load(model_dir, max_seq_length=MAX_SEQ)}
    for backend in BACKENDS[1:]:
        folder = work / f"export-{tag}-{backend}"
        build_export(model_dir, folder, backend, torch_model=torch_model)
        encoders[backend] = OnnxEncoder.load(
            folder, FILES[InferenceBackend(backend)], threads=1, max_seq_length=MAX_SEQ, backend=backend
        )
    return encoders


def score_backends(encoders: dict[str, Any], data: Any) -> dict[str, Any]:
    """Dev metrics of each encoder (corpus and queries embedded by it), with its NDCG@10 change against torch."""
    from embedloop.benchmarks.quality import PER_QUERY, paired_change, score_run

    doc_ids = list(data.corpus)
    qrels = data.qrels["dev"]
    qids = sorted(qrels)
    out: dict[str, Any] = {}
    for name, encoder in encoders.items():
        tick = time.perf_counter()
        docs = encoder.encode([data.corpus[d] for d in doc_ids], batch_size=64)
        queries = encoder.encode_query([data.queries[q] for q in qids], batch_size=64)
        top = np.argsort(-(queries @ docs.T), axis=1)[:, :100]
        ranked = {q: [doc_ids[j] for j in row] for q, row in zip(qids, top, strict=True)}
        scores = score_run(ranked, qrels, per_query=True)
        out[name] = {k: round(v, 4) for k, v in scores.items() if k not in ("queries", PER_QUERY)}
        out[name][PER_QUERY] = scores[PER_QUERY]
        out[name]["seconds"] = round(time.perf_counter() - tick, 1)
        log.info("quality %s: %s", name, {k: v for k, v in out[name].items() if k != PER_QUERY})
    for name in encoders:
        if name != "torch":
            out[name]["ndcg@10_delta"] = round(out[name]["ndcg@10"] - out["torch"]["ndcg@10"], 4)
            se, _paired = paired_change(out[name], out["torch"])  # per-query paired standard error of the change
            out[name]["ndcg@10_delta_se"] = round(se, 4) if se is not None else None
    return out


def bench_quality(
    encoders: dict[str, Any], datasets: Sequence[str], corpus_limit: int | None, fine_tune_pairs: int, work: Path
) -> dict[str, Any]:
    """Dev metrics per backend on each BEIR dataset: the base model and (``fine_tune_pairs`` > 0) a fine-tuned one.

    The fine-tuned version is the base trained once on ``fine_tune_pairs`` judged train pairs with the product's
    default Settings (the quality benchmark's oracle), then exported like a promoted version.
    """
    from embedloop.benchmarks.beir import load_beir
    from embedloop.benchmarks.quality import train_on_judgments
    from embedloop.models import resolve_model
    from embedloop.settings import Settings

    out: dict[str, Any] = {}
    for name in datasets:
        data = load_beir(DATA / name, splits=("train", "dev"), corpus_limit=corpus_limit)
        entry: dict[str, Any] = {"docs": len(data.corpus), "queries": len(data.qrels["dev"]), "notes": data.notes}
        entry["base"] = score_backends(encoders, data)
        if fine_tune_pairs > 0:
            settings = Settings(storage_path=str(work / f"settings-{name}"), torch_threads=1)
            base_path = resolve_model(perf.MODEL, work / "cache")
            tick = time.perf_counter()
            model, info = train_on_judgments(settings, base_path, data, fine_tune_pairs, 13, work / f"ft-{name}")
            info["seconds"] = round(time.perf_counter() - tick, 1)
            log.info("%s: fine-tuned on %d judged pairs in %.0f s", name, info["pairs"], info["seconds"])
            entry["fine_tuned"] = {
                "training": info,
                **score_backends(export_encoders(work / f"ft-{name}", work, f"ft-{name}", torch_model=model), data),
            }
        out[name] = entry
    return out


def bench_mpnet(minilm_torch: Any, work: Path, texts: Sequence[str], queries: Sequence[str]) -> dict[str, Any]:
    """all-mpnet-base-v2 on onnx-int8 (and torch) vs MiniLM on torch."""
    encoders, records = load_encoders("all-mpnet-base-v2", work, backends=("torch", "onnx-int8"))
    contenders = {"minilm-torch": minilm_torch, "mpnet-torch": encoders["torch"], "mpnet-int8": encoders["onnx-int8"]}
    chunks = [texts[i : i + 128] for i in range(0, len(texts), 128)]
    times = interleaved({n: (lambda c, e=e: e.encode(c, batch_size=64)) for n, e in contenders.items()}, chunks, 1)
    counted = sum(len(c) for c in chunks[1:])
    rates = {n: round(counted / sum(t), 1) for n, t in times.items()}
    q_times = interleaved({n: (lambda q, e=e: e.encode_query([q])) for n, e in contenders.items()}, queries, 5)
    return {
        "export": records,
        "catalog_items_per_s": rates,
        "query_p50_ms": {n: perf.summarise_ms(t)["p50_ms"] for n, t in q_times.items()},
        "mpnet_int8_vs_minilm_torch_throughput": perf.ratio(rates["mpnet-int8"], rates["minilm-torch"]),
    }


def save(results: dict[str, Any], out: Path | None) -> None:
    """Write what is measured so far (a later phase that fails loses nothing)."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")


def run(opts: argparse.Namespace) -> dict[str, Any]:
    perf.set_torch_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    results: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(),
        "machine": perf.machine_info(),
        "load_before": os.getloadavg(),
        "settings": vars(opts),
    }
    if opts.mpnet_only:
        encoders, _ = load_encoders(perf.MODEL, work, backends=("torch",))
        queries = [t.split(" - ", 1)[-1] for t in catalog_texts(80)]
        results["mpnet"] = bench_mpnet(encoders["torch"], work, catalog_texts(opts.catalog_items), queries)
        log.info("mpnet: %s", results["mpnet"])
        return results
    encoders, results["export"] = load_encoders(perf.MODEL, work)
    import random

    rng = random.Random(3)
    items = perf.make_catalog(2000, seed=5)
    queries = [perf.make_query(rng.choice(items), rng) for _ in range(opts.queries + 20)]
    results["query_encode"] = bench_query_encode(encoders, queries, warmup=20)
    log.info("query encode: %s", results["query_encode"])
    save(results, opts.out)
    results["search"] = []
    for size in opts.sizes:
        results["search"].append(bench_search(encoders, size, opts.queries, 20, work))
        log.info("search: %s", results["search"][-1])
        save(results, opts.out)
    results["catalog_embedding"] = {
        "securities": bench_throughput(encoders, catalog_texts(opts.catalog_items)),
        "scifact": bench_throughput(encoders, scifact_texts(opts.scifact_docs)),
    }
    log.info("catalog embedding: %s", results["catalog_embedding"])
    save(results, opts.out)
    if opts.quality:
        results["quality_dev"] = bench_quality(
            encoders, opts.quality_datasets, opts.quality_docs, opts.fine_tune_pairs, work
        )
        save(results, opts.out)
    if opts.mpnet:
        try:
            results["mpnet"] = bench_mpnet(encoders["torch"], work, catalog_texts(opts.catalog_items), queries[:60])
        except Exception as exc:  # noqa: BLE001 - e.g. the int8 export is refused: record why
            results["mpnet"] = {"error": f"{type(exc).__name__}: {exc}"}
        log.info("mpnet: %s", results["mpnet"])
    results["load_after"] = os.getloadavg()
    return results


def render(results: dict[str, Any]) -> str:
    """A markdown table of the headline ratios (speedup = torch time / backend time)."""
    lines = ["| figure | torch | onnx | onnx-int8 |", "|---|---|---|---|"]
    q = results["query_encode"]
    lines.append(
        f"| query encode p50 ms (speedup) | {q['torch']['p50_ms']} | {q['onnx']['p50_ms']} ({q['onnx']['p50_speedup']}x) "
        f"| {q['onnx-int8']['p50_ms']} ({q['onnx-int8']['p50_speedup']}x) |"
    )
    lines.append(
        f"| query encode p99 ms (speedup) | {q['torch']['p99_ms']} | {q['onnx']['p99_ms']} ({q['onnx']['p99_speedup']}x) "
        f"| {q['onnx-int8']['p99_ms']} ({q['onnx-int8']['p99_speedup']}x) |"
    )
    for s in results["search"]:
        lines.append(
            f"| search p50 ms at {s['items']:,} items | {s['torch']['p50_ms']} | {s['onnx']['p50_ms']} "
            f"({s['onnx']['p50_speedup']}x) | {s['onnx-int8']['p50_ms']} ({s['onnx-int8']['p50_speedup']}x) |"
        )
    for name, c in results["catalog_embedding"].items():
        lines.append(
            f"| {name} items/s ({c['items']} texts) | {c['torch']['items_per_s']} | {c['onnx']['items_per_s']} "
            f"({c['onnx']['speedup']}x) | {c['onnx-int8']['items_per_s']} ({c['onnx-int8']['speedup']}x) |"
        )
    e = results["export"]
    lines.append(
        f"| size on disk MB | {e['torch_weights_bytes'] / 1e6:.1f} | {e['onnx']['bytes'] / 1e6:.1f} "
        f"| {e['onnx-int8']['bytes'] / 1e6:.1f} |"
    )
    lines.append(
        f"| export (+ quantisation) s | - | {e['onnx']['export_seconds']} | {e['onnx-int8']['export_seconds']} |"
    )
    for name, entry in results.get("quality_dev", {}).items():
        for model in ("base", "fine_tuned"):
            if model not in entry:
                continue
            qq = entry[model]
            lines.append(
                f"| {name} dev NDCG@10, {model.replace('_', '-')} ({entry['docs']} docs, {entry['queries']} queries) "
                f"| {qq['torch']['ndcg@10']} | {qq['onnx']['ndcg@10']} ({_delta(qq['onnx'])}) "
                f"| {qq['onnx-int8']['ndcg@10']} ({_delta(qq['onnx-int8'])}) |"
            )
    return "\n".join(lines)


def _delta(entry: dict[str, Any]) -> str:
    """``+0.0013 ± 0.0021``: the NDCG@10 change against torch with its paired standard error (when known)."""
    se = entry.get("ndcg@10_delta_se")
    return f"{entry['ndcg@10_delta']:+}" + (f" ± {se}" if se is not None else "")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000", help="catalog sizes for search latency")
    p.add_argument("--queries", type=int, default=200, help="measured queries per figure (after 20 warm-up)")
    p.add_argument("--catalog-items", type=int, default=2000, help="securities texts embedded per backend")
    p.add_argument("--scifact-docs", type=int, default=500, help="SciFact abstracts embedded per backend")
    p.add_argument("--quality", action="store_true", help="dev NDCG@10 per backend (base and fine-tuned model)")
    p.add_argument("--quality-docs", type=int, default=None, help="corpus limit for --quality (default: all)")
    p.add_argument(
        "--quality-datasets", default="scifact,nfcorpus", help="BEIR datasets for --quality (comma-separated)"
    )
    p.add_argument(
        "--fine-tune-pairs",
        type=int,
        default=300,
        help="judged train pairs the fine-tuned version of --quality learns from (0: base model only)",
    )
    p.add_argument("--mpnet", action="store_true", help="all-mpnet-base-v2 int8 vs MiniLM torch")
    p.add_argument("--mpnet-only", action="store_true", help="only the mpnet comparison (no MiniLM backend figures)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    opts = p.parse_args(argv)
    opts.sizes = [int(x) for x in str(opts.sizes).split(",") if x.strip()]
    opts.quality_datasets = [x.strip() for x in str(opts.quality_datasets).split(",") if x.strip()]
    return opts


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    opts = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    tempfile.tempdir = str(scratch)  # every export, cache and store of this run lives here, removed at the end
    try:
        results = run(opts)
    finally:
        tempfile.tempdir = None
        shutil.rmtree(scratch, ignore_errors=True)
    if opts.mpnet_only:
        save(results, opts.out)
        sys.stdout.write(json.dumps(results["mpnet"], indent=2) + "\n")
        return
    table = render(results)
    results["table"] = table
    save(results, opts.out)
    sys.stdout.write(table + "\n")


if __name__ == "__main__":
    main()
