"""The clicks objective (multi-task mode): contrastive ranking on denoised click positives.

Optimises: for each (query, clicked item) row, a softmax over the clicked item, the row's hard
negatives (skip-above, margin-checked shown results, margin-checked mined results) and every other
row's items in the batch; the clicked item should win (MultipleNegativesRankingLoss, scale 20).
Batches hold click rows only (the multi-dataset sampler never mixes datasets in a batch), so a
noisy click cannot be the in-batch negative of a judged pair, and the click model's filtering
(``click_model``, ``"pbm_scores"`` by default) decides which clicks are rows at all.

Arguments: ``scale`` (default 20.0).

Paper: Henderson et al., 2017; van den Oord et al., 2018 (InfoNCE); Joachims et al., 2017
("Unbiased Learning-to-Rank with Biased Feedback") for why raw clicks need a click model first.

Dataset columns: ``anchor``, ``positive``, ``negative_1`` … ``negative_n``.

Prefer it as the main objective whenever clicks are the bulk of the feedback. Relatives:
:mod:`.judgments` (trusted labels), :mod:`.domain`, :mod:`.distill`.

Example::

    loss = build_clicks_loss(model)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from embedloop.training.losses.mnrl import build_mnrl_loss


def build_clicks_loss(model: Any, scale: float = 20.0) -> nn.Module:
    """MNRL over click rows."""
    return build_mnrl_loss(model, scale=scale)
