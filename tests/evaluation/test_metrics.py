"""The ranking metrics equal trec_eval's (through ir-measures / pytrec_eval) exactly, on graded and binary judgments."""

from __future__ import annotations

import math
import random

import pytest

from embedloop.benchmarks.quality import score_run
from embedloop.evaluation.metrics import mean_ranking_metrics, mrr_at_k, ndcg_at_k, ranking_metrics, recall_at_k

ir_measures = pytest.importorskip("ir_measures")  # a test dependency (requirements.txt), never a runtime one


def _random_case(seed: int) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(150)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, list[str]] = {}
    for q in range(25):
        qid = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 20))
        qrels[qid] = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        if all(g == 0 for g in qrels[qid].values()):
            qrels[qid][judged[0]] = 1
        run[qid] = rng.sample(docs, rng.randint(0, 120))
    return qrels, run


def _reference(qrels: dict[str, dict[str, int]], run: dict[str, list[str]]) -> dict[str, float]:
    # strictly decreasing scores: trec_eval's tie-breaking cannot reorder the list
    scored = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in run.items()}
    measures = [ir_measures.nDCG @ 10, ir_measures.RR @ 10, ir_measures.R @ 100]
    per_query: dict[str, dict[str, float]] = {}
    for m in ir_measures.iter_calc(measures, qrels, scored):
        per_query.setdefault(m.query_id, {})[str(m.measure)] = m.value
    # a query with judgments but an empty run is absent from trec_eval's output: it scores 0
    values = {name: [per_query.get(q, {}).get(name, 0.0) for q in qrels] for name in ("nDCG@10", "RR@10", "R@100")}
    return {name: sum(v) / len(v) for name, v in values.items()}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_means_equal_the_reference_exactly(seed: int):
    qrels, run = _random_case(seed)
    ours = score_run(run, qrels)  # the benchmarks' entry point
    ref = _reference(qrels, run)
    assert ours["queries"] == len(qrels)
    assert ours["ndcg@10"] == pytest.approx(ref["nDCG@10"], abs=1e-12)
    assert ours["mrr@10"] == pytest.approx(ref["RR@10"], abs=1e-12)
    assert ours["recall@100"] == pytest.approx(ref["R@100"], abs=1e-12)


def test_per_query_values_equal_the_reference():
    qrels, run = _random_case(7)
    scored = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in run.items()}
    for m in ir_measures.iter_calc([ir_measures.nDCG @ 5, ir_measures.RR @ 3, ir_measures.R @ 20], qrels, scored):
        ranked, judged = run[m.query_id], qrels[m.query_id]
        ours = {
            "nDCG@5": ndcg_at_k(ranked, judged, 5),
            "RR@3": mrr_at_k(ranked, judged, 3),
            "R@20": recall_at_k(ranked, judged, 20),
        }[str(m.measure)]
        assert ours == pytest.approx(m.value, abs=1e-12), (m.query_id, str(m.measure))


def test_hand_computed_values():
    ranked = ["a", "b", "c", "d"]
    # relevant b (grade 2) and d (grade 1), plus e (grade 1) never retrieved
    relevant = {"b": 2, "d": 1, "e": 1, "z": 0}
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, relevant, 10) == pytest.approx(dcg / idcg)
    assert mrr_at_k(ranked, relevant, 10) == 0.5
    assert mrr_at_k(ranked, relevant, 1) == 0.0
    assert recall_at_k(ranked, relevant, 10) == pytest.approx(2 / 3)
    assert ranking_metrics(ranked, {"a"}, 2) == {"mrr@2": 1.0, "ndcg@2": 1.0, "recall@2": 1.0}


def test_queries_without_relevant_items_are_left_out():
    out = mean_ranking_metrics([(["a"], {"a": 1}), (["a"], {"b": 0})], 10)
    assert out["queries"] == 1 and out["ndcg@10"] == 1.0
    empty = mean_ranking_metrics([], 10)
    assert empty["queries"] == 0 and math.isnan(empty["ndcg@10"])
