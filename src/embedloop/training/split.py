"""Held-out split by query: a query is in train or held-out, never both.

The newest queries (by their latest selection) are held out, so the gate asks
"does the candidate serve what users ask now?" and nothing leaks from training.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from embedloop.training.examples import normalise_query
from embedloop.types import FeedbackSession


@dataclass(frozen=True)
class FeedbackSplit:
    """Sessions for training and for the held-out evaluation."""

    train: list[FeedbackSession]
    holdout: list[FeedbackSession]
    train_queries: int
    holdout_queries: int


def split_by_query(sessions: Sequence[FeedbackSession], holdout_fraction: float) -> FeedbackSplit:
    """Hold out the newest ``holdout_fraction`` of distinct queries (at least one when there are two)."""
    groups: dict[str, list[FeedbackSession]] = defaultdict(list)
    for s in sessions:
        groups[normalise_query(s.query)].append(s)
    ordered = sorted(groups, key=lambda q: max(s.last_seq for s in groups[q]))
    n_holdout = math.ceil(len(ordered) * holdout_fraction) if len(ordered) > 1 else 0
    held = set(ordered[len(ordered) - n_holdout :]) if n_holdout else set()
    train = [s for q in ordered if q not in held for s in groups[q]]
    holdout = [s for q in ordered if q in held for s in groups[q]]
    return FeedbackSplit(train, holdout, len(ordered) - len(held), len(held))
