"""Serving: the active version's encoder + index, kept in sync with the catalog.

A :class:`ServingState` is immutable once published; switching versions builds
the new state completely and then replaces one reference, so a search running
during a switch finishes on the old state and the next one uses the new state.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedloop.errors import ModelIntegrityError, StorageError
from embedloop.index.faiss_index import VectorIndex
from embedloop.models.encoder import Encoder, encode_queries
from embedloop.search.interleave import Shown, team_draft
from embedloop.store import CatalogRow, FeedbackStore

logger = logging.getLogger(__name__)


@dataclass
class ServingState:
    """What one model version needs to answer searches."""

    version: int
    encoder: Encoder
    index: VectorIndex
    #: item key -> (item id, text), for the items in ``index``.
    items: dict[int, tuple[str, str]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: The version whose document embeddings ``index`` holds (itself, unless query-side).
    index_version: int = -1

    def __post_init__(self) -> None:
        if self.index_version < 0:
            self.index_version = self.version


class Searcher:
    """Loads versions, keeps their indexes in sync, answers nearest-neighbour queries."""

    def __init__(
        self,
        store: FeedbackStore,
        index_root: Path,
        *,
        encode_batch_size: int = 64,
        show_progress: bool = False,
        sync_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.index_root = index_root
        self.encode_batch_size = encode_batch_size
        self.show_progress = show_progress
        self.sync_interval = sync_interval
        self._state: ServingState | None = None
        self._candidate: ServingState | None = None
        self._last_sync = 0.0
        self._pool: ThreadPoolExecutor | None = None
        #: Called on the first read of :attr:`state` while nothing is published (lazy model loading).
        self.loader: Callable[[], None] | None = None

    @property
    def state(self) -> ServingState | None:
        """The published state; the first read loads it through :attr:`loader` (the model is lazy)."""
        if self._state is None and self.loader is not None:
            self.loader()
        return self._state

    @property
    def loaded_state(self) -> ServingState | None:
        """The published state, or ``None`` if nothing is loaded yet (never loads)."""
        return self._state

    @property
    def candidate(self) -> ServingState | None:
        """The state of a candidate on trial in this process (``None`` when no trial is served)."""
        return self._candidate

    def publish_candidate(self, state: ServingState | None) -> None:
        """Serve ``state`` next to the active one during a trial (``None``: stop)."""
        self._candidate = state

    def index_dir(self, version: int) -> Path:
        """Where ``version``'s index is kept."""
        return self.index_root / f"v{version:04d}"

    def build_state(self, version: int, encoder: Encoder, index_version: int | None = None) -> ServingState:
        """Load (or build) ``version``'s index and bring it up to date; does not publish it.

        Query-side versions read the index of their document generation
        (``index_version``); when the published state already holds it, it is
        shared as is — nothing is loaded or re-embedded.
        """
        index_version = version if index_version is None else index_version
        current = self._state
        if current is not None and current.index_version == index_version:
            state = ServingState(version, encoder, current.index, current.items, current.lock, index_version)
            self.sync(state, save=True)
            return state
        folder = self.index_dir(index_version)
        index: VectorIndex | None = None
        if (folder / "state.json").exists():
            try:
                index = VectorIndex.load(folder)
                if index.dimension != encoder.dimension:
                    logger.warning(
                        "Index %s has dimension %d, model has %d: rebuilding",
                        folder,
                        index.dimension,
                        encoder.dimension,
                    )
                    index = None
            except ModelIntegrityError as exc:
                logger.warning("%s", exc)
                index = None
        if index is None:
            state = ServingState(version, encoder, VectorIndex(encoder.dimension), index_version=index_version)
            rows = self.store.catalog()
            revision = self.store.catalog_revision()
            logger.info("Embedding %d catalog items for model version %d", len(rows), version)
            self._apply(state, rows)
            state.index.revision = revision
        else:
            state = ServingState(version, encoder, index, index_version=index_version)
            present = set(int(k) for k in index.keys())
            state.items = {r.key: (r.id, r.text) for r in self.store.catalog() if r.key in present}
        self.sync(state)
        state.index.save(folder)
        return state

    def publish(self, state: ServingState) -> None:
        """Make ``state`` the one searches use (a single reference swap)."""
        self._state = state
        self._last_sync = time.monotonic()

    def _apply(self, state: ServingState, rows: list[CatalogRow]) -> int:
        live = [r for r in rows if not r.deleted]
        gone = [r.key for r in rows if r.deleted]
        vectors = state.encoder.encode(
            [r.text for r in live],
            batch_size=self.encode_batch_size,
            show_progress=self.show_progress and len(live) > 256,
        )
        with state.lock:
            state.index.remove(gone)
            state.index.upsert([r.key for r in live], vectors)
            for key in gone:
                state.items.pop(key, None)
            state.items.update({r.key: (r.id, r.text) for r in live})
        return len(rows)

    def sync(self, state: ServingState, *, save: bool = False) -> int:
        """Apply catalog changes newer than the index; returns how many items changed."""
        rows, newest = self.store.changes_since(state.index.revision)
        if newest == state.index.revision:
            return 0
        changed = self._apply(state, rows) if rows else 0
        state.index.revision = newest
        if save:
            state.index.save(self.index_dir(state.index_version))
        return changed

    def maybe_sync(self) -> bool:
        """Sync the published (and candidate) state with the catalog at most every ``sync_interval`` seconds.

        Returns whether it checked (callers piggy-back their own periodic checks on it).
        """
        state = self._state
        if state is None:
            return False
        now = time.monotonic()
        if now - self._last_sync < self.sync_interval:
            return False
        self._last_sync = now
        self.sync(state, save=True)
        candidate = self._candidate
        if candidate is not None and candidate.index is not state.index:
            self.sync(candidate, save=True)
        return True

    def search(self, query: str, k: int) -> tuple[ServingState, list[tuple[int, float]]]:
        """Nearest items to ``query``: the state used and ``(key, score)`` pairs, best first."""
        state = self.state
        if state is None:
            raise StorageError("No model version is loaded; open the storage with EmbedLoop first.")
        vector = encode_queries(state.encoder, [query], batch_size=1)
        return state, self.search_vector(state, vector, k)

    def search_interleaved(
        self, query: str, k: int, candidate: ServingState, rng: random.Random
    ) -> tuple[ServingState, list[Shown[int]]]:
        """Team-draft interleave the active and the candidate model's top ``k`` for ``query``.

        The candidate's query is encoded on a second thread while this one
        encodes the active model's: torch releases the GIL inside its kernels.
        """
        state = self.state
        if state is None:
            raise StorageError("No model version is loaded; open the storage with EmbedLoop first.")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedloop-trial")
        pending = self._pool.submit(encode_queries, candidate.encoder, [query], batch_size=1)
        active_vector = encode_queries(state.encoder, [query], batch_size=1)
        candidate_vector = pending.result()
        ranked_a = self.search_vector(state, active_vector, k)
        ranked_c = self.search_vector(candidate, candidate_vector, k)
        return state, team_draft(ranked_a, ranked_c, k, rng)

    @staticmethod
    def search_vector(state: ServingState, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Nearest items to an already-encoded query."""
        with state.lock:
            scores, keys = state.index.search(vector, k)
        return [(int(key), float(score)) for key, score in zip(keys[0], scores[0], strict=True) if key >= 0]
