"""Encoders turn texts into L2-normalised float32 vectors.

``SentenceTransformerEncoder`` is the real one. ``HashingEncoder`` is a
deterministic bag-of-words encoder for tests that assert exact rankings; it
cannot be trained.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)


@runtime_checkable
class Encoder(Protocol):
    """Anything that embeds texts into a fixed-size, normalised space."""

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        ...

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """Embed ``texts``: shape ``(len(texts), dimension)``, float32, unit length."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


#: The encoder reads only the first ``max_seq_length`` tokens of a text, but tokenizing a
#: 1,000,000-character text whole takes over a second. Texts are cut to ``max_seq_length * 64``
#: characters first: a token of ordinary text spans about 4-6 characters, so the cut never reaches
#: the tokens that are embedded (8,192 characters at the default 128 tokens).
CHARS_PER_TOKEN = 64


class SentenceTransformerEncoder:
    """A sentence-transformers model, loaded from a local folder."""

    def __init__(self, model: SentenceTransformer) -> None:
        self.model = model
        #: Document-side texts embedded (tests count re-embedding with it); queries are counted apart.
        self.texts_encoded = 0
        self.queries_encoded = 0

    @classmethod
    def load(
        cls, path: Path, *, device: str | None = None, max_seq_length: int | None = None
    ) -> SentenceTransformerEncoder:
        """Load a sentence-transformers folder offline."""
        from sentence_transformers import SentenceTransformer

        from embedloop.progress import library_progress

        with library_progress():
            model = SentenceTransformer(str(path), device=device or "cpu", local_files_only=True)
        if max_seq_length is not None and (model.max_seq_length or 0) > max_seq_length:
            model.max_seq_length = max_seq_length
        encoder = cls(model)
        logger.debug("Loaded %s (max_seq_length %s)", path, model.max_seq_length)
        return encoder

    @property
    def max_chars(self) -> int | None:
        """Texts are cut to this many characters before tokenizing (see :data:`CHARS_PER_TOKEN`)."""
        tokens = getattr(self.model, "max_seq_length", None)
        return int(tokens) * CHARS_PER_TOKEN if tokens else None

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = getter()
        assert dim is not None
        return int(dim)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """Embed document texts in batches."""
        self.texts_encoded += len(texts)
        return self._embed(texts, batch_size, show_progress)

    def encode_query(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed queries (the same model; counted apart from documents)."""
        self.queries_encoded += len(texts)
        return self._embed(texts, batch_size, False)

    def _embed(self, texts: Sequence[str], batch_size: int, show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        limit = self.max_chars
        vectors = self.model.encode(
            [t[:limit] for t in texts] if limit else list(texts),
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def encode_queries(encoder: Encoder, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Embed queries: the encoder's query side when it has one (query-side training modes)."""
    query_side = getattr(encoder, "encode_query", None)
    if query_side is not None:
        return np.asarray(query_side(texts, batch_size=batch_size), dtype=np.float32)
    return encoder.encode(texts, batch_size=batch_size)


_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEncoder:
    """Deterministic hashed bag of words: identical inputs, identical vectors, anywhere."""

    def __init__(self, dimension: int = 512) -> None:
        self._dimension = dimension
        self.texts_encoded = 0

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        return self._dimension

    def _bucket(self, token: str) -> int:
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self._dimension

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """Embed ``texts``: one count per token bucket, then unit length."""
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()):
                out[row, self._bucket(token)] += 1.0
        return _normalise(out)
