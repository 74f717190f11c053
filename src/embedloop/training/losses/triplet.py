"""Triplet loss over (query, selected, skipped) — the spec's objective.

Optimises: ``max(d(q, pos) - d(q, neg) + margin, 0)`` with cosine distance
``d = 1 - cos``, so a selected item must be closer to the query than a skipped
one by at least ``margin``.

Arguments: ``margin`` (default 0.2; embeddings are unit length, so cosine
distances lie in [0, 2] and sentence-transformers' Euclidean default margin
of 5 would never be met).

Paper: Schroff et al., 2015, "FaceNet"; Reimers & Gurevych, 2019, "Sentence-BERT".

Dataset columns: ``anchor``, ``positive``, ``negative`` — one negative per row,
so an example with n negatives becomes n rows.

Prefer it when each query has a few trustworthy negatives (skip-above) and
batches are small. Relatives: :mod:`.mnrl` (in-batch negatives, usually
stronger with hard negatives), BatchHardTripletLoss.

Example::

    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer("path/to/all-MiniLM-L6-v2")
    loss = build_triplet_loss(model, margin=0.2)
"""

from __future__ import annotations

from typing import Any

from torch import nn

COLUMNS = ("anchor", "positive", "negative")


def build_triplet_loss(model: Any, margin: float = 0.2) -> nn.Module:
    """sentence-transformers' ``TripletLoss`` with cosine distance."""
    from sentence_transformers.sentence_transformer.losses import TripletDistanceMetric, TripletLoss

    return TripletLoss(model, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=margin)
