"""Training objectives, one per module; ``build_loss`` picks one by name."""

from __future__ import annotations

from typing import Any

from torch import nn

from embedloop.settings import LossName
from embedloop.training.losses.clicks import build_clicks_loss
from embedloop.training.losses.distill import build_distill_loss
from embedloop.training.losses.domain import build_domain_loss
from embedloop.training.losses.judgments import build_judgments_loss
from embedloop.training.losses.mnrl import build_mnrl_loss
from embedloop.training.losses.triplet import build_triplet_loss


def build_loss(name: LossName | str, model: Any) -> nn.Module:
    """The feedback loss named ``name`` (``"mnrl"`` or ``"triplet"``)."""
    name = LossName(name)
    if name is LossName.TRIPLET:
        return build_triplet_loss(model)
    return build_mnrl_loss(model)


__all__ = [
    "build_clicks_loss",
    "build_distill_loss",
    "build_domain_loss",
    "build_judgments_loss",
    "build_loss",
    "build_mnrl_loss",
    "build_triplet_loss",
]
