"""Distillation toward the parent model: a guard against forgetting.

Optimises: ``weight * MSE(student(text), parent(text))`` over catalog texts,
so fine-tuning moves the query/item geometry only as far as the feedback
requires and the rest of the catalog keeps the parent's neighbourhoods.

Arguments: ``weight`` (``EMBEDLOOP_DISTILL_WEIGHT``; 0 disables it).

Paper: Reimers & Gurevych, 2020, "Making Monolingual Sentence Embeddings
Multilingual using Knowledge Distillation" (the MSE-to-teacher objective).

Dataset columns: ``text`` and ``label`` (the parent's embedding of ``text``).

Prefer it when feedback is narrow (a few popular queries) and the catalog is
large. Relatives: replay of earlier feedback (always on by default), a small
learning rate and few epochs.

Example::

    loss = build_distill_loss(model, weight=1.0)
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class ScaledLoss(nn.Module):
    """Multiplies another loss by a constant weight."""

    def __init__(self, loss: nn.Module, weight: float) -> None:
        super().__init__()
        self.loss = loss
        self.weight = weight
        self.model = getattr(loss, "model", None)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """The wrapped loss times ``weight``."""
        return self.weight * self.loss(*args, **kwargs)


def build_distill_loss(model: Any, weight: float = 1.0) -> nn.Module:
    """``weight`` × sentence-transformers' ``MSELoss`` against parent embeddings."""
    from sentence_transformers.sentence_transformer.losses import MSELoss

    return ScaledLoss(MSELoss(model), weight)
