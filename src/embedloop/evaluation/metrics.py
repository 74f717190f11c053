"""The one implementation of the ranking metrics (NDCG@k, MRR@k, Recall@k).

Held-out evaluation (:mod:`embedloop.evaluation.retrieval`) and the quality
benchmark (:mod:`embedloop.benchmarks.quality`) both score with these
functions. Definitions follow trec_eval (``ndcg_cut``, ``recip_rank``,
``recall``), and ``tests/evaluation/test_metrics.py`` checks the values
against ``ir-measures`` (pytrec_eval) exactly:

* gains are the judged relevance grades (a set of relevant ids means grade 1);
  grades of 0 or less are not relevant;
* NDCG@k = DCG@k / IDCG@k with linear gains and a ``log2(rank + 1)`` discount,
  the ideal ranking made of all relevant grades, best first, cut at k;
* MRR@k = 1 / rank of the first relevant item within the top k (0 if none);
* Recall@k = relevant items within the top k / all relevant items.

A query without any relevant item has no defined value and is left out of the means.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

Judgments = Mapping[str, int] | Mapping[str, float] | set[str] | frozenset[str]


def _grades(relevant: Judgments) -> dict[str, float]:
    if isinstance(relevant, set | frozenset):
        return {item: 1.0 for item in relevant}
    return {item: float(grade) for item, grade in relevant.items() if grade > 0}


def ndcg_at_k(ranked: Sequence[str], relevant: Judgments, k: int) -> float:
    """NDCG@k of one ranked list (0 when nothing is relevant)."""
    grades = _grades(relevant)
    dcg = sum(grades.get(item, 0.0) / math.log2(rank + 2) for rank, item in enumerate(ranked[:k]))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum(grade / math.log2(rank + 2) for rank, grade in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: Judgments, k: int) -> float:
    """Reciprocal rank of the first relevant item within the top ``k`` (0 if none)."""
    grades = _grades(relevant)
    return next((1.0 / (rank + 1) for rank, item in enumerate(ranked[:k]) if item in grades), 0.0)


def recall_at_k(ranked: Sequence[str], relevant: Judgments, k: int) -> float:
    """Share of the relevant items found within the top ``k`` (0 when nothing is relevant)."""
    grades = _grades(relevant)
    if not grades:
        return 0.0
    return len(grades.keys() & set(ranked[:k])) / len(grades)


def ranking_metrics(
    ranked: Sequence[str], relevant: Judgments, k: int, *, recall_k: int | None = None
) -> dict[str, float]:
    """``{"mrr@k", "ndcg@k", "recall@k'"}`` of one ranked list (``k'`` = ``recall_k`` or ``k``)."""
    rk = recall_k or k
    return {
        f"mrr@{k}": mrr_at_k(ranked, relevant, k),
        f"ndcg@{k}": ndcg_at_k(ranked, relevant, k),
        f"recall@{rk}": recall_at_k(ranked, relevant, rk),
    }


def mean_ranking_metrics(
    runs: Iterable[tuple[Sequence[str], Judgments]], k: int, *, recall_k: int | None = None
) -> dict[str, float]:
    """Means of :func:`ranking_metrics` over ``(ranked, relevant)`` pairs, plus ``queries``.

    Pairs without any relevant item are skipped; with none left every metric is NaN.
    """
    totals: dict[str, float] = {}
    count = 0
    for ranked, relevant in runs:
        if not _grades(relevant):
            continue
        count += 1
        for name, value in ranking_metrics(ranked, relevant, k, recall_k=recall_k).items():
            totals[name] = totals.get(name, 0.0) + value
    names = list(ranking_metrics([], {"x": 1}, k, recall_k=recall_k))
    out = {name: (totals[name] / count if count else float("nan")) for name in names}
    out["queries"] = count
    return out
