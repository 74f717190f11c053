"""Triplet accuracy: the spec's "accuracy" of the gate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from embedloop.evaluation.base import Evaluator
from embedloop.models.encoder import Encoder, encode_queries


class TripletAccuracyEvaluator(Evaluator):
    """Share of (query, selected, skipped) triplets where the selected item scores higher.

    Built from held-out feedback: each selected item against each shown result
    the user did not select. Ties count as failures.

    ``weightings`` adds diagnostic variants computed from the same margins
    (nothing is encoded twice): ``{"examined": [w per triplet], ...}`` reports
    ``examined_accuracy`` / ``_margin`` / ``_count`` as weighted means over the
    triplets with a weight above 0 (only ``_count`` = 0 when there are none).
    """

    name = "triplet"
    primary_metric = "accuracy"

    def __init__(
        self,
        triplets: Sequence[tuple[str, str, str]],
        batch_size: int = 64,
        corpus_texts: Sequence[str] = (),
        *,
        weightings: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.triplets = list(triplets)
        self.weightings = {k: np.asarray(v, dtype=np.float64) for k, v in (weightings or {}).items()}
        for key, weights in self.weightings.items():
            if len(weights) != len(self.triplets):
                raise ValueError(f"weighting {key!r} has {len(weights)} weights for {len(self.triplets)} triplets")
        self.batch_size = batch_size
        #: Row of each catalog text in ``corpus_vectors`` (items found there are not re-encoded).
        self.corpus_rows = {t: i for i, t in enumerate(corpus_texts)}

    def __call__(self, encoder: Encoder, corpus_vectors: np.ndarray | None = None) -> dict[str, float]:
        """Accuracy and mean margin, plus each weighting's (NaN when there are no triplets)."""
        margins = self._margins(encoder, corpus_vectors)
        out = self.prefixed(_summary(margins, np.ones(len(margins))))
        for key, weights in self.weightings.items():
            if (weights > 0).any():
                out.update({f"{key}_{k}": v for k, v in _summary(margins, weights).items()})
            else:  # a diagnostic with nothing to score reports its count only (no NaN for the gate to trip on)
                out[f"{key}_count"] = 0.0
        return out

    def _margins(self, encoder: Encoder, corpus_vectors: np.ndarray | None) -> np.ndarray:
        """sim(query, selected) - sim(query, skipped) for every triplet."""
        if not self.triplets:
            return np.zeros(0)
        queries = sorted({a for a, _, _ in self.triplets})
        items = sorted({t for _, b, c in self.triplets for t in (b, c)})
        q_at = {t: i for i, t in enumerate(queries)}
        i_at = {t: i for i, t in enumerate(items)}
        q_vectors = encode_queries(encoder, queries, batch_size=self.batch_size)
        i_vectors = self._item_vectors(encoder, items, corpus_vectors)
        q = q_vectors[[q_at[a] for a, _, _ in self.triplets]]
        p = i_vectors[[i_at[b] for _, b, _ in self.triplets]]
        n = i_vectors[[i_at[c] for _, _, c in self.triplets]]
        return np.asarray((q * p).sum(axis=1) - (q * n).sum(axis=1), dtype=np.float64)

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


def _summary(margins: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """Weighted accuracy (margin > 0) and mean margin over the triplets with a positive weight."""
    used = weights > 0
    total = float(weights[used].sum())
    if total <= 0:
        return {"accuracy": float("nan"), "margin": float("nan"), "count": 0.0}
    w = weights[used] / total
    return {
        "accuracy": float(((margins[used] > 0) * w).sum()),
        # Mean similarity gap: a continuous signal that still moves when accuracy is saturated.
        "margin": float((margins[used] * w).sum()),
        "count": float(used.sum()),
    }
