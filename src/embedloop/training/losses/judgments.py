"""The judgments objective (multi-task mode): explicit relevance labels from people.

Optimises: for each (query, item judged relevant) row, a softmax over that item, the items judged
*not* relevant for the query (then ordinary hard negatives when there are too few), and the other
rows' items in the batch (MultipleNegativesRankingLoss), multiplied by ``weight``. A judgment is
a trusted label — no position bias, no mis-click — so it trains in batches of its own and is not
diluted by click noise.

Arguments: ``weight`` (default 1.0), ``scale`` (default 20.0).

Paper: Henderson et al., 2017 (MNRL); the active-learning loop that produces judgments:
Settles, 2009, "Active Learning Literature Survey".

Dataset columns: ``anchor``, ``positive``, ``negative_1`` … ``negative_n``.

Prefer it whenever a review queue or explicit feedback yields judgments. Relatives: :mod:`.clicks`.

Example::

    loss = build_judgments_loss(model, weight=1.0)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from embedloop.training.losses.distill import ScaledLoss
from embedloop.training.losses.mnrl import build_mnrl_loss


def build_judgments_loss(model: Any, weight: float = 1.0, scale: float = 20.0) -> nn.Module:
    """``weight`` × MNRL over judged-relevant rows with judged-irrelevant negatives."""
    loss = build_mnrl_loss(model, scale=scale)
    return loss if weight == 1.0 else ScaledLoss(loss, weight)
