"""Ranking metrics of selected items against the whole catalog."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from embedloop.evaluation.base import Evaluator
from embedloop.evaluation.metrics import ranking_metrics
from embedloop.models.encoder import Encoder, encode_queries


class RetrievalEvaluator(Evaluator):
    """MRR@k, NDCG@k and Recall@k (primary: NDCG@10) of held-out queries over the catalog.

    ``relevant`` maps each query to the item ids users selected for it;
    ``corpus_ids`` / ``corpus_texts`` are the whole live catalog.
    """

    name = "retrieval"
    primary_metric = "ndcg@10"

    def __init__(
        self,
        relevant: Mapping[str, set[str]],
        corpus_ids: Sequence[str],
        corpus_texts: Sequence[str],
        *,
        k: int = 10,
        batch_size: int = 64,
    ) -> None:
        self.queries = list(relevant)
        self.relevant = {q: set(v) for q, v in relevant.items()}
        self.corpus_ids = list(corpus_ids)
        self.corpus_texts = list(corpus_texts)
        self.k = k
        self.batch_size = batch_size
        self.primary_metric = f"ndcg@{k}"

    def encode_corpus(self, encoder: Encoder, show_progress: bool = False) -> np.ndarray:
        """Embed the catalog (reused as the new version's index when promoted)."""
        return encoder.encode(self.corpus_texts, batch_size=self.batch_size, show_progress=show_progress)

    def __call__(self, encoder: Encoder, corpus_vectors: np.ndarray | None = None) -> dict[str, float]:
        """Mean metrics over the held-out queries."""
        if not self.queries or not self.corpus_ids:
            return self.prefixed(
                {f"ndcg@{self.k}": float("nan"), f"mrr@{self.k}": float("nan"), f"recall@{self.k}": float("nan")}
            )
        corpus = corpus_vectors if corpus_vectors is not None else self.encode_corpus(encoder)
        queries = encode_queries(encoder, self.queries, batch_size=self.batch_size)
        scores = queries @ corpus.T
        k = min(self.k, len(self.corpus_ids))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        totals: dict[str, float] = {}
        for row, query in enumerate(self.queries):
            order = top[row][np.argsort(-scores[row, top[row]])]
            ranked = [self.corpus_ids[i] for i in order]
            for name, value in ranking_metrics(ranked, self.relevant[query], self.k).items():
                totals[name] = totals.get(name, 0.0) + value
        metrics = {name: value / len(self.queries) for name, value in totals.items()}
        metrics["queries"] = len(self.queries)
        return self.prefixed(metrics)
