"""Triplet accuracy: the spec's "accuracy" of the gate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embedloop.evaluation.base import Evaluator
from embedloop.models.encoder import Encoder


class TripletAccuracyEvaluator(Evaluator):
    """Share of (query, selected, skipped) triplets where the selected item scores higher.

    Built from held-out feedback: each selected item against each shown result
    the user did not select. Ties count as failures.
    """

    name = "triplet"
    primary_metric = "accuracy"

    def __init__(self, triplets: Sequence[tuple[str, str, str]], batch_size: int = 64) -> None:
        self.triplets = list(triplets)
        self.batch_size = batch_size

    def __call__(self, encoder: Encoder, corpus_vectors: np.ndarray | None = None) -> dict[str, float]:
        """Accuracy (NaN when there are no triplets)."""
        if not self.triplets:
            return self.prefixed({"accuracy": float("nan"), "count": 0})
        texts = sorted({t for triplet in self.triplets for t in triplet})
        position = {t: i for i, t in enumerate(texts)}
        vectors = encoder.encode(texts, batch_size=self.batch_size)
        q = vectors[[position[a] for a, _, _ in self.triplets]]
        p = vectors[[position[b] for _, b, _ in self.triplets]]
        n = vectors[[position[c] for _, _, c in self.triplets]]
        wins = (q * p).sum(axis=1) > (q * n).sum(axis=1)
        return self.prefixed({"accuracy": float(wins.mean()), "count": len(self.triplets)})
