"""The domain-examples objective (multi-task mode): pairs an operator supplies up front.

Optimises: for each (query, positive text) pair from ``domain_examples_path`` (JSONL), a softmax
over the positive and every other pair's texts in the batch (MultipleNegativesRankingLoss with
in-batch negatives only). Unlike single-task mode, pairs without a ``negative`` are kept: the
batch supplies their negatives. Rows that do carry a ``negative`` form a second dataset
(``domain_negatives``) with the same loss and one hard negative column.

Arguments: ``scale`` (default 20.0).

Paper: Henderson et al., 2017; Reimers & Gurevych, 2019 ("Sentence-BERT").

Dataset columns: ``anchor``, ``positive`` (and ``negative_1`` in ``domain_negatives``).

Prefer it to teach vocabulary the traffic has not reached yet (tickers, abbreviations).
Relatives: :mod:`.clicks`.

Example::

    loss = build_domain_loss(model)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from embedloop.training.losses.mnrl import build_mnrl_loss


def build_domain_loss(model: Any, scale: float = 20.0) -> nn.Module:
    """MNRL over domain pairs (in-batch negatives)."""
    return build_mnrl_loss(model, scale=scale)
