"""Query-side encoders: documents keep a parent's embeddings, only queries change.

``QuerySideEncoder`` pairs the document encoder of a *document generation*
(the version whose catalog embeddings are in the index) with a query
transform. ``encode`` embeds documents (new or changed catalog items) exactly
as that generation did; ``encode_query`` embeds queries the new way. Two
transforms exist, one per training mode:

- ``adapter``: a low-rank residual map on the query embedding,
  ``q' = normalise(q + B(A q))`` (``A``: d×r, ``B``: r×d, ``B`` starts at 0 so an
  untrained adapter is the identity) — see :class:`LowRankAdapter`;
- ``query_encoder``: a separately fine-tuned copy of the encoder for queries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from embedloop.models.encoder import Encoder, _normalise, encode_queries

ADAPTER_FILE = "adapter.pt"


class LowRankAdapter(nn.Module):
    """``q + B(A q)``, then unit length. Identity at initialisation."""

    def __init__(self, dimension: int, rank: int = 32) -> None:
        super().__init__()
        self.dimension = dimension
        self.rank = rank
        self.down = nn.Linear(dimension, rank, bias=False)
        self.up = nn.Linear(rank, dimension, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        """Adapted, normalised query embeddings."""
        return nn.functional.normalize(queries + self.up(self.down(queries)), dim=-1)

    def save(self, folder: Path) -> Path:
        """Write the weights and shape to ``folder/adapter.pt``."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ADAPTER_FILE
        torch.save({"dimension": self.dimension, "rank": self.rank, "state": self.state_dict()}, path)
        return path

    @classmethod
    def load(cls, folder: Path) -> LowRankAdapter:
        """Read an adapter saved by :meth:`save`."""
        payload = torch.load(folder / ADAPTER_FILE, map_location="cpu", weights_only=True)
        adapter = cls(int(payload["dimension"]), int(payload["rank"]))
        adapter.load_state_dict(payload["state"])
        adapter.eval()
        return adapter

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Adapt a batch of numpy query embeddings."""
        with torch.no_grad():
            out = self(torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)))
        return out.numpy().astype(np.float32, copy=False)


class QuerySideEncoder:
    """Documents through ``doc_encoder``; queries through ``query_fn``."""

    def __init__(self, doc_encoder: Encoder, query_fn: Callable[[Sequence[str], int], np.ndarray]) -> None:
        self.doc_encoder = doc_encoder
        self._query_fn = query_fn

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        return self.doc_encoder.dimension

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """Embed documents as the document generation does."""
        return self.doc_encoder.encode(texts, batch_size=batch_size, show_progress=show_progress)

    def encode_query(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed queries the query-side way."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return _normalise(np.asarray(self._query_fn(texts, batch_size), dtype=np.float32))


def adapter_encoder(query_base: Encoder, doc_encoder: Encoder, adapter: LowRankAdapter) -> QuerySideEncoder:
    """Queries: ``query_base``'s query embedding, then the adapter."""
    return QuerySideEncoder(
        doc_encoder, lambda texts, bs: adapter.transform(encode_queries(query_base, texts, batch_size=bs))
    )


def query_model_encoder(query_model: Encoder, doc_encoder: Encoder) -> QuerySideEncoder:
    """Queries: a separately trained encoder."""
    return QuerySideEncoder(doc_encoder, lambda texts, bs: query_model.encode(texts, batch_size=bs))
