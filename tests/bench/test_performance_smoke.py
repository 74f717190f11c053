"""Smoke test: the pieces of ``bench/performance.py`` run at tiny sizes and produce a table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "performance.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_performance", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def perf():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the benchmark's default --torch-threads; stable on a busy 2-core machine
    try:
        yield _load_bench()
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_performance_pieces_at_tiny_sizes(perf, tmp_path: Path) -> None:
    from embedloop import EmbedLoop

    opts = perf.parse_args(["--quick"])
    assert opts.sizes == "1000" and opts.torch_threads == 1

    items = perf.make_catalog(200, seed=0)
    assert len({i["id"] for i in items}) == 200 and len({i["text"] for i in items}) == 200
    storage = tmp_path / "loop"
    reindex = perf.reindex_product(storage, items)
    assert reindex["items"] == 200 and reindex["items_per_second"] > 0 and reindex["peak_rss_mib"] > 0

    with EmbedLoop(perf.settings_for(storage)) as loop:
        raw_model = perf.load_raw_model(loop.base_model_path())
        raw_index, raw_ids = perf.raw_index_like(loop)
        inter = perf.bench_reindex_interleaved(tmp_path / "reindex", raw_model, chunk=20, chunks=2)
        assert inter["catalog_after"] == 41 and inter["ratio"] > 0
        results: dict = {
            "reindex": {
                "items": 200,
                "one_call": {"product": reindex, "raw": reindex, "ratio": 1.0},
                "interleaved": inter,
                "ratio": inter["ratio"],
                "serving_peak_rss_ratio": 1.0,
            }
        }
        assert raw_index.ntotal == 200
        import random

        rng = random.Random(0)
        queries = [perf.make_query(rng.choice(items), rng) for _ in range(25)]
        search = perf.bench_search(loop, raw_model, raw_index, raw_ids, queries, warmup=5)
        assert search["queries"] == 20 and search["product"]["p50_ms"] > 0 and search["raw"]["p50_ms"] > 0
        assert search["top1_agreement"] >= 0.9  # same model, same vectors: same answers
        results["search"] = {"200": search}
        sim = perf.simulate_feedback(loop, items, 12)
        assert sim["events"] == 12 and loop.feedback_stats()["selections"] == 12

    ingest = perf.bench_ingest(tmp_path / "ingest", Path("."), 200, single_n=20, batch_size=20, batches=2)
    assert ingest["product_rows"]["selections"] == 20 + 40 + 20  # warm-up events included
    assert ingest["batch"]["ratio"] > 0 and ingest["single"]["product_events_per_second"] > 0
    results["ingest"] = ingest

    training = perf.bench_training(loop.base_model_path(), 8, tmp_path / "train", repeats=1)
    assert training["rows"] == 8 and training["train_loop_ratio"] > 0
    results["training"] = training

    table = perf.render_table(results)
    for figure in ("search p50 @ 200 items", "ingest batch", "training rows/s", "re-index items/s"):
        assert figure in table


def test_raw_db_copies_the_product_schema(perf, tmp_path: Path) -> None:
    from embedloop import EmbedLoop
    from embedloop.models.encoder import HashingEncoder

    with EmbedLoop(perf.settings_for(tmp_path / "s"), encoder=HashingEncoder(16)) as loop:
        db = Path(loop.store.engine.url.database or "")
    from perf.ingest import RawFeedbackDB  # the phase modules under bench/perf/ (on sys.path once loaded)

    raw = RawFeedbackDB(tmp_path / "raw.db", db)
    try:
        tables = {row[0] for row in raw.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"searches", "impressions", "selections"} <= tables
        raw.insert([{"query": "q", "shown": ["a", "b"], "selected": ["b"]}])
        assert raw.conn.execute("SELECT rank FROM selections").fetchone()[0] == 2
    finally:
        raw.close()


@pytest.mark.slow
def test_cycle_piece_at_tiny_size(perf, tmp_path: Path) -> None:
    from embedloop import EmbedLoop

    items = perf.make_catalog(200, seed=0)
    storage = tmp_path / "loop"
    perf.reindex_product(storage, items)
    with EmbedLoop(perf.settings_for(storage)) as loop:
        perf.simulate_feedback(loop, items, 40)
    cycle = perf.run_cycle_bench(storage, items, idle_searches=5, interval=0.01)
    assert cycle["status"] in ("promoted", "trial", "rejected"), cycle["reasons"]
    assert cycle["timings"]["train_seconds"] > 0 and cycle["wall_seconds"] > 0
    assert cycle["cycle_peak_rss_mib"] >= cycle["rss_before_cycle_mib"] > 0
    assert cycle["search_idle"]["n"] >= 5 and cycle["search_during_cycle"]["n"] >= 1
    table = perf.render_table({"cycle": cycle, "feedback_simulation": {"events": 40}})
    assert "cycle wall (40 events)" in table
