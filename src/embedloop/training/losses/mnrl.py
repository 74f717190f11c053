"""Multiple-negatives ranking loss (InfoNCE) with hard negatives.

Optimises: for each query in a batch, a softmax over its selected item, its own
hard negatives (skip-above, shown, mined) and every other row's items; the
selected item should win. Scale 20 (temperature 0.05) on cosine similarity.

Arguments: ``scale`` (default 20.0).

Paper: Henderson et al., 2017, "Efficient Natural Language Response
Suggestion for Smart Reply"; van den Oord et al., 2018 (InfoNCE).

Dataset columns: ``anchor``, ``positive``, ``negative_1`` … ``negative_n``
(the same n in every row). Train with the no-duplicates batch sampler so an
item is never an in-batch negative of a row where it is the positive.

Prefer it by default: every batch gives each query many negatives for free,
and hard negatives sharpen the confusable cases (AAPL vs APLE). Relatives:
:mod:`.triplet`, CachedMultipleNegativesRankingLoss (larger batches on little memory).

Example::

    loss = build_mnrl_loss(model)
"""

from __future__ import annotations

from typing import Any

from torch import nn


def build_mnrl_loss(model: Any, scale: float = 20.0) -> nn.Module:
    """sentence-transformers' ``MultipleNegativesRankingLoss``."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model, scale=scale)
