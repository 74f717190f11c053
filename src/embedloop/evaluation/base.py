"""The evaluator base: a name, a primary metric, and flat ``name_metric`` results."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from embedloop.models.encoder import Encoder


class Evaluator(ABC):
    """Scores an encoder on held-out feedback.

    Subclasses set ``name`` and ``primary_metric``; ``__call__`` returns a flat
    dict keyed ``f"{name}_{metric}"``. Promotion reads only
    :attr:`primary_key` plus the gate's explicit conditions.
    """

    name: str = "evaluator"
    primary_metric: str = ""
    greater_is_better: bool = True

    @property
    def primary_key(self) -> str:
        """The result key of the primary metric."""
        return f"{self.name}_{self.primary_metric}"

    @abstractmethod
    def __call__(self, encoder: Encoder, corpus_vectors: np.ndarray | None = None) -> dict[str, float]:
        """Evaluate ``encoder``; ``corpus_vectors`` may supply precomputed catalog embeddings."""

    def prefixed(self, metrics: dict[str, float]) -> dict[str, float]:
        """Prefix metric names with the evaluator's name."""
        return {f"{self.name}_{k}": float(v) for k, v in metrics.items()}
