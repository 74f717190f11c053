"""Triplet accuracy: the spec's "accuracy" of the gate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embedloop.evaluation.base import Evaluator
from embedloop.models.encoder import Encoder, encode_queries


class TripletAccuracyEvaluator(Evaluator):
    """Share of (query, selected, skipped) triplets where the selected item scores higher.

    Built from held-out feedback: each selected item against each shown result
    the user did not select. Ties count as failures.
    """

    name = "triplet"
    primary_metric = "accuracy"

    def __init__(
        self,
        triplets: Sequence[tuple[str, str, str]],
        batch_size: int = 64,
        corpus_texts: Sequence[str] = (),
        *,
        weights: Sequence[float] | None = None,
        name: str = "triplet",
    ) -> None:
        self.triplets = list(triplets)
        self.name = name
        #: Per-triplet weights (e.g. how likely the skipped result was examined); all 1 by default.
        self.weights = np.ones(len(self.triplets)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(self.weights) != len(self.triplets):
            raise ValueError("weights must have one value per triplet")
        self.batch_size = batch_size
        #: Row of each catalog text in ``corpus_vectors`` (items found there are not re-encoded).
        self.corpus_rows = {t: i for i, t in enumerate(corpus_texts)}

    def __call__(self, encoder: Encoder, corpus_vectors: np.ndarray | None = None) -> dict[str, float]:
        """Accuracy (NaN when there are no triplets)."""
        if not self.triplets:
            return self.prefixed({"accuracy": float("nan"), "margin": float("nan"), "count": 0})
        queries = sorted({a for a, _, _ in self.triplets})
        items = sorted({t for _, b, c in self.triplets for t in (b, c)})
        q_at = {t: i for i, t in enumerate(queries)}
        i_at = {t: i for i, t in enumerate(items)}
        q_vectors = encode_queries(encoder, queries, batch_size=self.batch_size)
        i_vectors = self._item_vectors(encoder, items, corpus_vectors)
        q = q_vectors[[q_at[a] for a, _, _ in self.triplets]]
        p = i_vectors[[i_at[b] for _, b, _ in self.triplets]]
        n = i_vectors[[i_at[c] for _, _, c in self.triplets]]
        margins = (q * p).sum(axis=1) - (q * n).sum(axis=1)
        w = self.weights / self.weights.sum()
        return self.prefixed(
            {
                "accuracy": float(((margins > 0) * w).sum()),
                # Mean similarity gap: a continuous signal that still moves when accuracy is saturated.
                "margin": float((margins * w).sum()),
                "count": len(self.triplets),
            }
        )

    def _item_vectors(self, encoder: Encoder, items: list[str], corpus: np.ndarray | None) -> np.ndarray:
        if corpus is None:
            return encoder.encode(items, batch_size=self.batch_size)
        out = np.zeros((len(items), corpus.shape[1]), dtype=np.float32)
        missing = [i for i, t in enumerate(items) if t not in self.corpus_rows]
        found = [i for i, t in enumerate(items) if t in self.corpus_rows]
        if found:
            out[found] = corpus[[self.corpus_rows[items[i]] for i in found]]
        if missing:
            out[missing] = encoder.encode([items[i] for i in missing], batch_size=self.batch_size)
        return out
