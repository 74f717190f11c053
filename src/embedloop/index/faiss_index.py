"""A FAISS inner-product index over unit vectors, keyed by item key.

One index per model version lives in ``<storage>/indexes/v<N>/``:
``index.faiss`` (vectors and integer keys) and ``state.json`` (the catalog
change it is in sync with, the dimension and the file's sha256). Files are
written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embedloop.errors import ModelIntegrityError

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
STATE_FILE = "state.json"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)  # the rename itself survives a crash


def fsync_dir(folder: Path) -> None:
    """Flush a directory entry so a rename in it survives a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())


class VectorIndex:
    """Exact cosine search (inner product of unit vectors) with add / remove by key."""

    def __init__(self, dimension: int, revision: int = 0, index: faiss.Index | None = None) -> None:
        self.dimension = dimension
        #: The newest catalog change this index reflects.
        self.revision = revision
        self._index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def upsert(self, keys: Sequence[int], vectors: np.ndarray) -> None:
        """Add vectors under ``keys``, replacing any vectors those keys had."""
        if not len(keys):
            return
        if vectors.shape != (len(keys), self.dimension):
            raise ValueError(f"vectors shape {vectors.shape} does not match {len(keys)} keys x {self.dimension}")
        ids = np.asarray(keys, dtype=np.int64)
        with self._lock:
            self._index.remove_ids(ids)  # type: ignore[arg-type]
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def remove(self, keys: Sequence[int]) -> None:
        """Drop the vectors of ``keys`` (unknown keys are ignored)."""
        if len(keys):
            with self._lock:
                self._index.remove_ids(np.asarray(keys, dtype=np.int64))  # type: ignore[arg-type]

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` scores and keys for each row of ``vectors`` (keys are -1 past the end)."""
        with self._lock:
            k = max(1, min(k, len(self) or 1))
            scores, keys = self._index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return scores, keys

    def vectors(self, keys: Sequence[int]) -> np.ndarray:
        """The stored vectors of ``keys``, in order."""
        with self._lock:
            return (
                np.vstack([self._index.reconstruct(int(k)) for k in keys])
                if len(keys)
                else np.zeros((0, self.dimension), dtype=np.float32)
            )

    def keys(self) -> np.ndarray:
        """Every key in the index."""
        with self._lock:
            return faiss.vector_to_array(self._index.id_map).copy()  # type: ignore[attr-defined]

    def save(self, folder: Path) -> None:
        """Persist to ``folder`` atomically (index file first, then the state that names its hash)."""
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            data = faiss.serialize_index(self._index).tobytes()
            revision = self.revision
        atomic_write_bytes(folder / INDEX_FILE, data)
        state = {
            "revision": revision,
            "dimension": self.dimension,
            "count": len(self),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        atomic_write_json(folder / STATE_FILE, state)

    @classmethod
    def load(cls, folder: Path) -> VectorIndex:
        """Load and verify a saved index; a mismatch raises :class:`ModelIntegrityError`."""
        state_path, index_path = folder / STATE_FILE, folder / INDEX_FILE
        try:
            state = json.loads(state_path.read_text())
            data = index_path.read_bytes()
        except (OSError, ValueError) as exc:
            raise ModelIntegrityError(f"Index in {folder} cannot be read ({exc}); it will be rebuilt.") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != state.get("sha256"):
            raise ModelIntegrityError(
                f"Index file {index_path} is corrupted (sha256 {actual[:12]}… does not match "
                f"{str(state.get('sha256'))[:12]}…); it will be rebuilt."
            )
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls(int(state["dimension"]), int(state["revision"]), index)
