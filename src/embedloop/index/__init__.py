"""Vector indexes, one per model version."""

from embedloop.index.faiss_index import VectorIndex

__all__ = ["VectorIndex"]
