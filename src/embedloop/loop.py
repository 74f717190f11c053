"""``EmbedLoop``: the one Python API. CLI, HTTP and MCP only translate to it."""

from __future__ import annotations

import logging
import os
import random
import shutil
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from embedloop.catalog.loaders import read_catalog_file, validate_items
from embedloop.errors import (
    ConfigError,
    InvalidInputError,
    ModelIntegrityError,
    NoHeldOutDataError,
    NotFoundError,
    StorageError,
)
from embedloop.models.encoder import Encoder
from embedloop.registry import ModelRegistry
from embedloop.search.searcher import Searcher, ServingState
from embedloop.settings import Settings
from embedloop.statuses import VersionStatus
from embedloop.store import FeedbackStore
from embedloop.store.locks import switch_lock
from embedloop.store.trials import query_key
from embedloop.training.services import Services
from embedloop.types import FeedbackEvent, Hit, Item, SearchResponse, Selection
from embedloop.validation import (
    MAX_BATCH_EVENTS,
    check_batch_size,
    check_id,
    check_id_list,
    check_k,
    check_text,
    implicit_event_id,
)

if TYPE_CHECKING:
    from embedloop.feedback.review import Ranker
    from embedloop.scheduler import FineTuneScheduler

logger = logging.getLogger(__name__)


def _prepare_storage(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"LEARNING_STORAGE_PATH={str(path)!r} cannot be created: {exc.strerror}. Choose a writable folder."
        ) from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise StorageError(f"LEARNING_STORAGE_PATH={str(path)!r} is not a writable folder. Choose a writable folder.")
    return path


class EmbedLoop:
    """Search over a catalog that learns from what its users select.

    >>> loop = EmbedLoop(Settings(storage_path="./data", embedding_model="all-MiniLM-L6-v2"))
    >>> loop.add_items([{"id": "AAPL", "text": "AAPL - Apple Inc. Common Stock"}])
    >>> resp = loop.search("Apple stock price", k=10)
    >>> loop.record_selection(resp.search_id, "AAPL")

    ``encoder`` replaces the model with a fixed encoder (tests use a
    deterministic one); such a loop can search and log but not fine-tune.
    """

    def __init__(self, settings: Settings | None = None, *, encoder: Encoder | None = None) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        if self.settings.torch_threads is not None:
            _set_threads(self.settings.torch_threads)
        root = _prepare_storage(self.settings.storage_path.expanduser())
        self.storage_path = root
        self.store = FeedbackStore(self.settings.sqlalchemy_url)
        self.registry = ModelRegistry(root / "models")
        self._fixed_encoder = encoder
        self._encoders: dict[int, Encoder] = {}
        self._base_path: Path | None = None
        self._switch_lock = threading.RLock()
        #: The process's fine-tuning scheduler, if one was made for this loop (it sets itself here).
        self.scheduler: FineTuneScheduler | None = None
        self.searcher = Searcher(
            self.store,
            root / "indexes",
            encode_batch_size=self.settings.encode_batch_size,
            show_progress=self.settings.show_progress and sys.stderr.isatty(),
        )
        self._check_base_model()
        if encoder is None and not self.registry.exists(0):
            self.base_model_path()  # a new storage: refuse a model that cannot be found now, not at first search
        self.registry.register_base(self.settings.embedding_model)
        self._recover()
        self._active_stamp = -1
        self._trial: dict[str, Any] | None = None  # the open trial as last read from the store
        self._trial_skip: frozenset[str] = frozenset()  # its queries answered by the active model alone
        self._trial_rng = random.Random()
        # Lazy: the model and index load on the first search / encode (`status`, `select` never load them).
        self.searcher.loader = self._load_serving

    # ------------------------------------------------------------- lifecycle
    def warm_up(self) -> int:
        """Load the active model and its index now instead of at the first search; returns the version.

        Servers call it before accepting requests; commands that do not encode never do.
        """
        state = self.searcher.state
        if state is None:  # pragma: no cover - the loader always publishes a state or raises
            raise StorageError("No model version could be loaded.")
        return state.version

    def __enter__(self) -> EmbedLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the database connections."""
        self.store.close()

    def _check_base_model(self) -> None:
        if not self.registry.exists(0):
            return
        recorded = self.registry.manifest(0).get("base_model")
        if _canonical(recorded) != _canonical(self.settings.embedding_model):
            raise ConfigError(
                f"EMBEDDING_MODEL={self.settings.embedding_model!r}, but the storage at {self.storage_path} "
                f"was built with {recorded!r}. Use a new LEARNING_STORAGE_PATH for another base model, "
                f"or set EMBEDDING_MODEL={recorded!r}."
            )

    def _recover(self) -> None:
        """Finish or undo what a process killed mid-promotion left (the ``ACTIVE`` pointer decides)."""
        from embedloop.store.runs import close_orphaned_runs
        from embedloop.store.trials import PROMOTING, open_trial

        self.registry.recover()
        trial = open_trial(self.store)
        if trial is not None and trial["status"] == PROMOTING:  # a trial won, its switch was interrupted
            from embedloop.training.trial import check_trial

            check_trial(self.services())  # nothing is loaded yet: only the pointer moves
        active = self.registry.active_version()
        run_id = self.registry.manifest(active).get("run_id") if active is not None else None
        closed = close_orphaned_runs(self.store, active_version=active, active_run_id=run_id)
        if closed:
            logger.warning("Closed training runs %s left running by a trainer that stopped.", closed)

    # ---------------------------------------------------------------- models
    def base_model_path(self) -> Path:
        """The resolved local folder of the base model."""
        if self._base_path is None:
            from embedloop.models import resolve_model

            self._base_path = resolve_model(self.settings.embedding_model, self.storage_path / "cache")
        return self._base_path

    def model_path(self, version: int) -> Path:
        """The local folder of ``version``'s weights."""
        return self.base_model_path() if version == 0 else self.registry.model_dir(version)

    def load_encoder(self, version: int, *, verify: bool = True) -> Encoder:
        """Load ``version``'s encoder (weights checked against the manifest first).

        Query-side versions combine their document generation's encoder with
        their own query transform (see ``models/query_side.py``). Loaded
        encoders are kept, so switching back to a version costs nothing.
        """
        if self._fixed_encoder is not None:
            return self._fixed_encoder
        if version in self._encoders:
            return self._encoders[version]
        manifest = self.registry.manifest(version)
        mode = manifest.get("mode", "full")
        if verify:
            self.registry.verify(version)
        encoder: Encoder
        # [issue 15] the inference backend (torch / onnx / onnx-int8) picks the encoder: registry/exports.py
        from embedloop.registry.exports import load_version_encoder

        if mode == "full":
            encoder = load_version_encoder(self.registry, version, self.model_path(version), self.settings)
        else:
            from embedloop.models.query_side import LowRankAdapter, adapter_encoder, query_model_encoder

            docs = self.load_encoder(int(manifest["doc_generation"]), verify=verify)
            folder = self.registry.model_dir(version)
            if mode == "adapter":
                parent = self.load_encoder(int(manifest["parent"]), verify=verify)
                encoder = adapter_encoder(parent, docs, LowRankAdapter.load(folder))
            else:
                query_model = load_version_encoder(self.registry, version, folder, self.settings)  # [issue 15]
                encoder = query_model_encoder(query_model, docs)
        self._encoders[version] = encoder
        return encoder

    @property
    def trainable(self) -> bool:
        """Whether fine-tuning can run (not with a fixed encoder passed to the constructor)."""
        return self._fixed_encoder is None

    def remember_encoder(self, version: int, encoder: Encoder) -> None:
        """Keep a freshly trained encoder so this process need not reload it."""
        if self._fixed_encoder is None:
            self._encoders[version] = encoder

    def doc_generation(self, version: int) -> int:
        """The version whose document embeddings ``version`` searches (itself unless query-side)."""
        return int(self.registry.manifest(version).get("doc_generation", version))

    def _build(self, version: int) -> ServingState:
        return self.searcher.build_state(version, self.load_encoder(version), self.doc_generation(version))

    def _load_active(self) -> None:
        """Publish the active version; a corrupted one falls back to the newest good version."""
        with self._switch_lock:
            stamp = self.registry.active_stamp()
            active = self.registry.active_version()
            if active is None:
                raise StorageError(f"{self.registry.root} has no ACTIVE model version; restore the storage folder.")
            state = self.searcher.loaded_state
            if state is not None and state.version == active:
                self._active_stamp = stamp
                return
            try:
                new_state = self._build(active)
            except ModelIntegrityError as exc:
                logger.error("%s Falling back to the previous good version.", exc)
                new_state = self._fallback(active)
            self.searcher.publish(new_state)
            self._active_stamp = self.registry.active_stamp()

    def _fallback(self, broken: int) -> ServingState:
        self.registry.update(broken, status=VersionStatus.FAILED, failure="integrity check failed at load")
        for manifest in self.registry.manifests():
            version = manifest["version"]
            if version == broken or manifest.get("status") not in (VersionStatus.ACTIVE, VersionStatus.RETIRED):
                continue
            try:
                state = self._build(version)
            except ModelIntegrityError as exc:
                logger.error("%s", exc)
                continue
            self.registry.activate(version)
            return state
        raise ModelIntegrityError("No intact model version is left; restore the storage folder from a backup.")

    def _load_serving(self) -> None:
        """Load the active version and the open trial's candidate (on first use: loading is lazy)."""
        self._load_active()
        self._refresh_trial()

    def _refresh(self) -> None:
        """Pick up another process's promotion, trial or catalog changes."""
        if self.searcher.loaded_state is None:
            self._load_serving()
        elif self.registry.active_stamp() != self._active_stamp:
            self._load_active()
            self._refresh_trial()
        if self.searcher.maybe_sync():
            self._refresh_trial()

    def _refresh_trial(self) -> None:
        """Serve the store's open trial in this process (loading its candidate), or stop serving a closed one."""
        from embedloop.store.trials import RUNNING, open_trial

        trial = open_trial(self.store)
        if trial is not None and trial["status"] != RUNNING:
            from embedloop.training.trial import check_trial

            check_trial(self.services())  # a promotion interrupted by a crash: complete it
            trial = open_trial(self.store)
        self._set_trial(trial)
        candidate = self.searcher.candidate
        if trial is None or trial["status"] != RUNNING:
            if candidate is not None:
                self.searcher.publish_candidate(None)
            return
        version = int(trial["candidate_version"])
        if candidate is not None and candidate.version == version:
            return
        try:
            self.searcher.publish_candidate(self._build(version))
        except Exception as exc:  # searches never fail for a trial: they go on with the active model alone
            logger.error("Cannot serve trial candidate v%d (%s); answering with the active model only.", version, exc)
            self.searcher.publish_candidate(None)

    def services(self) -> Services:
        """The parts the training stages work with (store, registry, search state), for tools built on them."""
        return Services(
            settings=self.settings,
            store=self.store,
            registry=self.registry,
            searcher=self.searcher,
            model_path=self.model_path,
            load_encoder=self.load_encoder,
            activate_state=self.activate_state,
            remember_encoder=self.remember_encoder,
            serve_candidate=self._serve_candidate,
            trainable=self.trainable,
        )

    def _serve_candidate(self, state: ServingState | None) -> None:
        self.searcher.publish_candidate(state)
        from embedloop.store.trials import open_trial

        self._set_trial(open_trial(self.store) if state is not None else None)

    def _set_trial(self, trial: dict[str, Any] | None) -> None:
        """The open trial this process serves, and the query keys it answers with the active model alone."""
        self._trial = trial
        self._trial_skip = frozenset(trial.get("skip_queries") or ()) if trial is not None else frozenset()

    @property
    def active_version(self) -> int:
        """The version searches use now (read from the registry until a model is loaded)."""
        state = self.searcher.loaded_state
        if state is not None:
            return state.version
        active = self.registry.active_version()
        if active is None:
            raise StorageError(f"{self.registry.root} has no ACTIVE model version; restore the storage folder.")
        return active

    # --------------------------------------------------------------- catalog
    def add_items(self, items: Iterable[Mapping[str, Any] | Item]) -> dict[str, int]:
        """Upsert items (dicts with ``id``, ``text``, optional ``metadata``) and index them.

        The whole batch is validated first; one bad row refuses all of it.
        """
        if isinstance(items, str | bytes | Mapping):
            raise InvalidInputError("items must be a list of {'id': ..., 'text': ...} objects.", field="items")
        rows = validate_items(list(items), max_text_length=self.settings.max_text_length)  # type: ignore[arg-type]
        return self._upsert(rows)

    def load_catalog(self, path: str | Path, *, id_field: str = "id", text_field: str = "text") -> dict[str, int]:
        """Upsert every row of a CSV / JSONL (optionally .gz) file and index it."""
        rows = read_catalog_file(
            path, id_field=id_field, text_field=text_field, max_text_length=self.settings.max_text_length
        )
        return self._upsert(rows)

    def load_demo_catalog(self, limit: int | None = None) -> dict[str, int]:
        """Load the packaged catalog of US-listed securities (see ``catalog/data/ATTRIBUTION.md``)."""
        from embedloop.catalog.demo import iter_demo_catalog

        return self._upsert(validate_items(list(iter_demo_catalog(limit)), where="demo catalog"))

    def _upsert(self, rows: Sequence[Item]) -> dict[str, int]:
        changed = self.store.upsert_items(rows)
        self._sync_now()
        return {"received": len(rows), "changed": changed, "total": self.store.count_items()}

    def delete_items(self, ids: Sequence[str]) -> dict[str, int]:
        """Remove items from the catalog and the index (feedback about them is kept)."""
        wanted = check_id_list(list(ids) if not isinstance(ids, str) else ids, "ids")
        deleted = self.store.delete_items(wanted)
        self._sync_now()
        return {"deleted": deleted, "total": self.store.count_items()}

    def list_items(self, limit: int = 50, after: str | None = None) -> dict[str, Any]:
        """One page of catalog items ordered by id: ``{"items", "next_after", "total"}`` (no model needed)."""
        from embedloop.store.catalog_pages import list_items

        return list_items(self.store, limit=limit, after=after)

    def _sync_now(self) -> None:
        state = self.searcher.state
        if state is not None:
            self.searcher.sync(state, save=True)
        candidate = self.searcher.candidate  # catalog changes during a trial reach both models
        if candidate is not None and (state is None or candidate.index is not state.index):
            self.searcher.sync(candidate, save=True)

    # ---------------------------------------------------------------- search
    def search(self, query: str, k: int = 10, *, user_id: str | None = None) -> SearchResponse:
        """Rank catalog items for ``query`` and log exactly what was shown."""
        query = check_text(
            query, "query", max_length=self.settings.max_query_length, setting="EMBEDLOOP_MAX_QUERY_LENGTH"
        )
        k = check_k(k, max_k=self.settings.max_k)
        if user_id is not None:
            user_id = check_id(user_id, "user_id")
        self._refresh()
        trial, candidate = self._trial, self.searcher.candidate
        if (
            trial is not None
            and candidate is not None
            and candidate.version == trial["candidate_version"]
            and self._trial_rng.random() < float(trial["share"])
            and not (self._trial_skip and query_key(query) in self._trial_skip)
        ):
            return self._search_trial(query, k, user_id, int(trial["id"]), candidate)
        exploring = self.settings.exploration != "off"
        state, ranked = self.searcher.search(query, max(k, 50) if exploring else k)
        propensities: list[float] | None = None
        if exploring:  # randomised swaps / insertions from ranks 11-50, each shown item's propensity logged
            from embedloop.search.exploration import explore

            shown = explore(
                ranked, k, mode=self.settings.exploration, rate=self.settings.exploration_rate, rng=self._trial_rng
            )
            ranked, propensities = shown.shown, shown.propensity
        hits = []
        for rank, (key, score) in enumerate(ranked, start=1):
            item_id, text = state.items[key]
            hits.append(Hit(item_id=item_id, text=text, score=score, rank=rank))
        search_id = self.store.log_search(
            query,
            [(h.item_id, h.score) for h in hits],
            model_version=state.version,
            user_id=user_id,
            propensities=propensities,
        )
        return SearchResponse(search_id=search_id, query=query, hits=hits, model_version=state.version)

    def _search_trial(
        self, query: str, k: int, user_id: str | None, trial_id: int, candidate: ServingState
    ) -> SearchResponse:
        """A trial search: the two models' results team-draft interleaved, each shown item's source logged."""
        state, shown = self.searcher.search_interleaved(query, k, candidate, self._trial_rng)
        hits, sources = [], []
        for rank, entry in enumerate(shown, start=1):
            item_id, text = state.items.get(entry.key) or candidate.items[entry.key]
            hits.append(Hit(item_id=item_id, text=text, score=entry.score, rank=rank))
            sources.append(entry.source)
        search_id = self.store.log_search(
            query,
            [(h.item_id, h.score) for h in hits],
            model_version=state.version,
            user_id=user_id,
            trial_id=trial_id,
            sources=sources,
        )
        return SearchResponse(search_id=search_id, query=query, hits=hits, model_version=state.version)

    # --------------------------------------------------------------- feedback
    def record_selection(self, search_id: str, item_id: str, *, event_id: str | None = None) -> Selection:
        """Log that the user picked ``item_id`` from search ``search_id``.

        Only items shown for that search can be selected. A repeated
        ``event_id`` is a no-op (the result has ``duplicate=True``). Without an
        ``event_id``, the pair (search, item) is the event: selecting the same
        result of the same search again is recorded once.
        """
        search_id = check_id(search_id, "search_id")
        item_id = check_id(item_id, "item_id")
        event_id = check_id(event_id, "event_id") if event_id is not None else implicit_event_id(search_id, item_id)
        selection = self.store.record_selection(search_id, item_id, event_id=event_id)
        if self._trial is not None and not selection.duplicate:
            from embedloop.store.trials import trial_of_search

            if trial_of_search(self.store, search_id) == self._trial["id"]:
                self.check_trial()
        return selection

    def record_feedback(
        self,
        query: str,
        shown: Sequence[str],
        selected: Sequence[str],
        *,
        user_id: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """Log a search done elsewhere: the query, the ids shown in order, the ids picked."""
        event = self._check_event(query, shown, selected, user_id, event_id)
        search_id, picked = self.store.record_feedback([event])[0]
        return {"search_id": search_id, "selections": [s.to_dict() for s in picked]}

    def record_feedback_batch(self, events: Iterable[FeedbackEvent | Mapping[str, Any]]) -> dict[str, int]:
        """Log many external searches in one transaction (all or nothing)."""
        checked = []
        if isinstance(events, Sequence):
            check_batch_size(len(events), "events")
        for n, raw in enumerate(events, start=1):
            if n > MAX_BATCH_EVENTS:
                check_batch_size(n, "events")
            data = raw.__dict__ if isinstance(raw, FeedbackEvent) else raw
            if not isinstance(data, Mapping):
                raise InvalidInputError(f"event {n} must be an object with query, shown, selected.", field="events")
            try:
                checked.append(
                    self._check_event(
                        data.get("query"),
                        data.get("shown"),
                        data.get("selected"),
                        data.get("user_id"),
                        data.get("event_id"),
                    )
                )
            except InvalidInputError as exc:
                raise InvalidInputError(f"event {n}: {exc}", field=exc.field) from None
        results = self.store.record_feedback(checked)
        return {"events": len(results), "selections": sum(len(s) for _, s in results)}

    def _check_event(self, query: Any, shown: Any, selected: Any, user_id: Any, event_id: Any) -> FeedbackEvent:
        # Sizes first, every check linear (a hostile list of 100,000 ids is refused at once).
        query = check_text(
            query, "query", max_length=self.settings.max_query_length, setting="EMBEDLOOP_MAX_QUERY_LENGTH"
        )
        shown_ids = check_id_list(shown, "shown", max_items=self.settings.max_k)
        selected_ids = check_id_list(selected, "selected", allow_empty=True, max_items=self.settings.max_k)
        shown_set = set(shown_ids)
        not_shown = [i for i in selected_ids if i not in shown_set]
        if not_shown:
            raise InvalidInputError(
                f"selected id(s) {not_shown[:5]!r} are not in shown; every selected id must be one of the shown ids.",
                field="selected",
            )
        return FeedbackEvent(
            query=query,
            shown=shown_ids,
            selected=selected_ids,
            user_id=check_id(user_id, "user_id") if user_id is not None else None,
            event_id=check_id(event_id, "event_id") if event_id is not None else None,
        )

    def feedback_stats(self) -> dict[str, Any]:
        """Counts of items, searches, impressions, selections, and the selection rate."""
        return self.store.stats()

    def runs(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Training runs newest first, one page: ``{"runs": [...], "total", "limit", "offset"}``."""
        from embedloop.store.stats import MAX_PAGE, check_count, runs_page

        return runs_page(self.store, check_count(limit, "limit", 1, MAX_PAGE), check_count(offset, "offset", 0, 10**12))

    def feedback_timeline(self, days: int = 30) -> dict[str, Any]:
        """Searches, selections and click-through per UTC day; top unselected queries and selected items."""
        from embedloop.store.stats import MAX_DAYS, check_count, feedback_timeline

        return feedback_timeline(self.store, check_count(days, "days", 1, MAX_DAYS))

    def export_feedback(self, destination: str | Path | IO[str]) -> int:
        """Write feedback as JSON lines (one per search with selections); returns the count."""
        if isinstance(destination, str | Path):
            path = Path(destination).expanduser()
            try:
                with path.open("w", encoding="utf-8") as fh:
                    return self.store.export_feedback(fh)
            except OSError as exc:
                raise InvalidInputError(f"Cannot write {str(path)!r}: {exc.strerror}.", field="path") from None
        return self.store.export_feedback(destination)

    def feedback_records(self, limit: int = 1000, offset: int = 0) -> dict[str, Any]:
        """One page of the export (oldest first): ``{"records": [...], "total", "limit", "offset"}``."""
        from embedloop.store.stats import check_count

        limit = check_count(limit, "limit", 1, 100_000)
        offset = check_count(offset, "offset", 0, 10**12)
        records = self.store.feedback_records()
        return {"records": records[offset : offset + limit], "total": len(records), "limit": limit, "offset": offset}

    # ------------------------------------------------ review (explicit judgments)
    def review_queue(self, limit: int = 10, *, compare_with: Ranker | None = None) -> list[dict[str, Any]]:
        """Open review questions, most useful first: ``review_id``, ``query``, ``candidates``, ``reason``.

        Refreshes the queue from recent traffic first (see ``docs/review.md``).
        ``compare_with``: a second ranking (``embedloop.feedback.state_ranker(state)``) to ask where
        it disagrees with the active model. By default, while a trial runs, the candidate on trial is
        that second ranking: the queries where the two models disagree most are asked
        (``model_disagreement``), so explicit answers weigh in where the trial's clicks are thin.
        """
        from embedloop.feedback.review import open_queue, refresh_queue, state_ranker, state_scorer

        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInputError(f"limit must be an integer from 1 to 1000, got {limit!r}.", field="limit")
        self._refresh()
        state = self.searcher.state
        assert state is not None
        candidate = self.searcher.candidate
        if compare_with is None and candidate is not None:
            compare_with = state_ranker(candidate, self.settings.encode_batch_size)
        from embedloop.training.signal import index_scorer

        scores_feature = self.settings.click_model == "pbm_scores"  # the queue's click model is training's
        refresh_queue(
            self.store,
            state_ranker(state, self.settings.encode_batch_size),
            state_scorer(state),
            active_version=state.version,
            compare_with=compare_with,
            list_scorer=index_scorer(state, self.settings.encode_batch_size)[0] if scores_feature else None,
            # which clicks training keeps as positives: an answer that confirms one changes nothing
            positive_cut=self.settings.click_min_relevance if self.settings.click_model != "off" else 0.0,
        )
        return open_queue(self.store, limit)

    def answer_review(
        self,
        review_id: str,
        selected: Sequence[str] = (),
        rejected: Sequence[str] = (),
        reviewer: str | None = None,
    ) -> dict[str, Any]:
        """Answer a review question: ``selected`` items are relevant, ``rejected`` ones are not.

        Idempotent (the same answer again returns ``duplicate: True``). An unknown id, an item
        that was not a candidate, or an empty answer is refused and nothing is stored.
        """
        from embedloop.feedback.persistence import answer_question

        review_id = check_id(review_id, "review_id")
        picked = check_id_list(selected, "selected", allow_empty=True)
        refused = check_id_list(rejected, "rejected", allow_empty=True)
        who = check_id(reviewer, "reviewer") if reviewer is not None else None
        result = answer_question(self.store, review_id, picked, refused, who)
        if not result["duplicate"]:
            self._judged_during_trial()
        return result

    def record_judgment(self, query: str, item_id: str, relevant: bool, reviewer: str | None = None) -> dict[str, Any]:
        """Record that ``item_id`` is (``relevant=True``) or is not relevant to ``query``, without a question."""
        from embedloop.feedback.persistence import record_judgment

        query = check_text(query, "query", max_length=self.settings.max_text_length)
        item_id = check_id(item_id, "item_id")
        if not isinstance(relevant, bool):
            raise InvalidInputError(f"relevant must be true or false, got {relevant!r}.", field="relevant")
        who = check_id(reviewer, "reviewer") if reviewer is not None else None
        judgment = record_judgment(self.store, query, item_id, relevant, who)
        if not judgment.duplicate:
            self._judged_during_trial()
        return judgment.to_dict()

    def _judged_during_trial(self) -> None:
        """A new judgment is trial evidence (``evaluation/trial_test.py``): check the running trial."""
        if self._trial is not None:
            self.check_trial()

    def judgments(
        self, query: str | None = None, *, reviewer: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Recorded judgments, newest first (optionally of one query or reviewer)."""
        from embedloop.feedback.persistence import list_judgments

        if query is not None:
            query = check_text(query, "query", max_length=self.settings.max_text_length)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000):
            raise InvalidInputError(f"limit must be an integer from 1 to 100000, got {limit!r}.", field="limit")
        if reviewer is not None:
            reviewer = check_id(reviewer, "reviewer")
        return [j.to_dict() for j in list_judgments(self.store, query=query, reviewer=reviewer, limit=limit)]

    def export_judgments(self, destination: str | Path | IO[str]) -> int:
        """Write every judgment as JSON lines, oldest first; returns the count."""
        from embedloop.feedback.persistence import export_judgments

        if isinstance(destination, str | Path):
            path = Path(destination).expanduser()
            try:
                with path.open("w", encoding="utf-8") as fh:
                    return export_judgments(self.store, fh)
            except OSError as exc:
                raise InvalidInputError(f"Cannot write {str(path)!r}: {exc.strerror}.", field="path") from None
        return export_judgments(self.store, destination)

    # ----------------------------------------------------------------- status
    def _last_trained_seq(self) -> int:
        from embedloop.store.runs import last_trained_seq

        return last_trained_seq(self.store)

    def status(self) -> dict[str, Any]:
        """The spec's status dict plus what an operator needs to see.

        The spec's keys ``should_fine_tune``, ``feedback_count``, ``threshold``,
        ``current_model``; then ``active_version``, ``last_run``, ``trial``,
        ``training_in_progress`` and ``training_lock`` (holder and lease end,
        ``None`` when free), ``next_scheduled_check`` (ISO time; ``None``
        without a running scheduler in this process), ``scheduler`` and the
        review queue's counts.
        """
        from embedloop.feedback.persistence import review_counts
        from embedloop.store.locks import holder as lock_holder
        from embedloop.store.runs import last_run

        since = self._last_trained_seq()
        count = self.store.count_selections(after_seq=since)
        active = self.active_version
        base = self.settings.embedding_model
        trial = self.trial_status()
        lock = lock_holder(self.store)
        if lock is not None and lock["expired"]:
            lock = None
        scheduler = self.scheduler
        return {
            "should_fine_tune": count >= self.settings.fine_tune_threshold and trial is None,
            "feedback_count": count,
            "threshold": self.settings.fine_tune_threshold,
            "current_model": base if active == 0 else f"{base}@v{active}",
            "base_model": base,
            "active_version": active,
            "events_since_last_training": count,
            "total_feedback": self.store.count_selections(),
            "items": self.store.count_items(),
            "last_run": last_run(self.store),
            "min_accuracy": self.settings.min_accuracy,
            "check_interval_seconds": self.settings.check_interval_seconds,
            "trials": self.settings.trials,
            "trial": trial,
            "training_in_progress": lock is not None,
            "training_lock": lock,
            "next_scheduled_check": scheduler.next_check_at if scheduler is not None else None,
            "scheduler": scheduler.info() if scheduler is not None else None,
            "review": review_counts(self.store),  # issue 13
        }

    # ------------------------------------------------------------ the loop
    def fine_tune(self, force: bool = False) -> dict[str, Any]:
        """Run one cycle: feedback → examples → candidate → pre-check → trial (or, trials off, promote at once).

        Returns ``status`` ("promoted" | "trial" | "rejected" | "skipped" |
        "failed"), ``version``, ``metrics`` (active vs candidate) and
        ``reasons``. With ``trial`` the candidate is served to a share of
        searches next to the active model and the users' selections decide,
        with no further call (``status()["trial"]``). A cycle while a trial
        runs is ``skipped``. ``force`` runs below the threshold; after a
        rejection it may retrain on feedback already used.
        """
        from embedloop.training.cycle import run_cycle

        if not isinstance(force, bool):
            raise InvalidInputError(f"force must be true or false, got {force!r}.", field="force")
        return run_cycle(self.services(), force=force)

    def trial_status(self) -> dict[str, Any] | None:
        """The running trial: candidate version, searches, wins, losses, ties, the test statistic, the decision so far."""
        from embedloop.training.trial import trial_status

        return trial_status(self.services())

    def check_trial(self) -> dict[str, Any] | None:
        """Decide the running trial if the evidence suffices (selections and the scheduler call this)."""
        from embedloop.training.trial import check_trial

        with self._switch_lock:
            result = check_trial(self.services())
        if result is not None and result["decision"] != "continue":
            self._refresh_trial()
        return result

    def stop_trial(self, reason: str = "stopped by an operator") -> dict[str, Any]:
        """End the running trial now: the candidate is rejected and the active model stays."""
        from embedloop.training.trial import stop_trial

        reason = check_text(reason, "reason", max_length=1000)
        with self._switch_lock:
            return stop_trial(self.services(), reason)

    def trials(self, limit: int = 20) -> list[dict[str, Any]]:
        """Trials newest first, with their outcomes."""
        from embedloop.store.trials import list_trials

        return list_trials(self.store, limit=limit)

    def evaluate(self, candidate: str | Path | None = None) -> dict[str, Any]:
        """The active model's metrics on the held-out part of the current feedback.

        ``candidate``: a model folder to score against the same held-out set
        and gate (e.g. one trained under ``torchrun``); nothing is promoted.
        """
        from embedloop.training.cycle import evaluate_active

        folder = _model_folder(candidate) if candidate is not None else None
        result = evaluate_active(self.services(), folder)
        if not result.get("holdout_queries"):
            raise NoHeldOutDataError(
                f"No held-out feedback to evaluate on: {self.store.count_selections()} selection(s) cover too few "
                "distinct queries (the held-out part is the newest "
                f"{self.settings.holdout_fraction:.0%} of distinct queries, EMBEDLOOP_HOLDOUT_FRACTION, and needs "
                "at least two queries). Record selections for more distinct queries, then evaluate again."
            )
        return result

    def export_model(
        self, version: int | None = None, backend: str | None = None, *, force: bool = False
    ) -> list[dict[str, Any]]:
        """Export ``version`` (default: the active one) for an ONNX backend and record it in its manifest.

        ``backend`` defaults to ``settings.inference_backend`` (``onnx`` or
        ``onnx-int8``). The versions ``version`` loads from (its document
        generation, an adapter's parent) are exported too. An intact export is
        kept unless ``force``. Returns one dict per exported version. [issue 15]
        """
        from embedloop.registry.exports import export_versions

        version = self.active_version if version is None else version
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInputError(f"version must be a non-negative integer, got {version!r}.", field="version")
        self.registry.manifest(version)  # NotFoundError names the kept versions
        chosen = backend if backend is not None else self.settings.inference_backend.value
        targets = sorted({version} | self.registry.dependencies(version))
        with_weights = [v for v in targets if self.registry.manifest(v).get("mode", "full") != "adapter"]
        for v in with_weights:
            self.registry.verify(v)
        return export_versions(self.registry, [(v, self.model_path(v)) for v in with_weights], chosen, force=force)

    def versions(self) -> list[dict[str, Any]]:
        """Kept model versions, newest first, the active one marked (``active``) and a candidate on trial too (``on_trial``)."""
        from embedloop.store.trials import RUNNING, open_trial

        trial = open_trial(self.store)
        on_trial = trial["candidate_version"] if trial is not None and trial["status"] == RUNNING else None
        return [{**m, "on_trial": m["version"] == on_trial} for m in self.registry.versions()]

    def activate(self, version: int) -> None:
        """Build ``version``'s index, then switch to it atomically."""
        self.activate_state(self._build(version))

    def activate_state(self, state: ServingState) -> None:
        """Make a fully built state active: the registry pointer first, then this process's searches."""
        with self._switch_lock:
            self.registry.activate(state.version)
            self.searcher.publish(state)
            self._active_stamp = self.registry.active_stamp()

    def rollback(self, version: int | None = None) -> dict[str, Any]:
        """Switch to the previous version, or to ``version``; returns the new active manifest.

        A running trial ends first: its candidate is rejected.
        """
        from embedloop.store.trials import RUNNING, open_trial

        trial = open_trial(self.store)
        if trial is not None and trial["status"] == RUNNING:
            self.stop_trial("ended by a rollback")
        with switch_lock(self.store):
            return self._rollback(version)

    def _rollback(self, version: int | None) -> dict[str, Any]:
        active = self.active_version
        if version is None:
            candidates = [
                m["version"]
                for m in self.registry.manifests()
                if m["version"] < active and m.get("status") in (VersionStatus.RETIRED, VersionStatus.ACTIVE)
            ]
            if not candidates:
                raise NotFoundError(f"Version {active} has no earlier version to roll back to.")
            version = max(candidates)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInputError(f"version must be a non-negative integer, got {version!r}.", field="version")
        manifest = self.registry.manifest(version)
        if manifest.get("status") in (VersionStatus.REJECTED, VersionStatus.FAILED, VersionStatus.CANDIDATE):
            raise InvalidInputError(
                f"Version {version} is {manifest.get('status')!r} and was never promoted; roll back to a retired version.",
                field="version",
            )
        self.activate(version)
        logger.info("Rolled back from version %d to %d", active, version)
        return self.registry.manifest(version)

    def prune(self, keep: int = 5) -> dict[str, Any]:
        """Keep ``keep`` trained versions (the active one first, then the newest); delete the rest.

        Versions a kept query-side version depends on (its document
        generation, an adapter's parent) are kept too. The base version 0 has
        no weights of its own and is always kept.
        """
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise InvalidInputError(f"keep must be an integer >= 1, got {keep!r}.", field="keep")
        with switch_lock(self.store):
            return self._prune(keep)

    def _prune(self, keep: int) -> dict[str, Any]:
        from embedloop.store.trials import open_trial

        trial = open_trial(self.store)
        on_trial = {int(trial["candidate_version"])} if trial is not None else set()
        active = self.active_version
        trained = [m["version"] for m in self.registry.manifests() if m["version"] != 0]
        ordered = ([active] if active in trained else []) + [v for v in trained if v != active]
        kept = set(ordered[:keep])
        needed = set().union(*(self.registry.dependencies(v) for v in kept)) if kept else set()
        removed = []
        for version in ordered:
            if version in kept or version in needed or version in on_trial:
                continue
            self.registry.remove(version)
            shutil.rmtree(self.searcher.index_dir(version), ignore_errors=True)
            self._encoders.pop(version, None)
            removed.append(version)
        return {"removed": removed, "kept": [m["version"] for m in self.registry.manifests()]}


def _model_folder(candidate: str | Path) -> Path:
    """``candidate`` as a saved sentence-transformers model folder, or a clear error (nothing is downloaded)."""
    if not isinstance(candidate, str | Path) or not str(candidate).strip():
        raise InvalidInputError(f"candidate must be a model folder path, got {candidate!r:.80}.", field="candidate")
    folder = Path(candidate).expanduser()
    try:
        saved = (folder / "modules.json").is_file() or (folder / "config.json").is_file()
    except OSError:
        saved = False
    if not saved:
        raise InvalidInputError(
            f"candidate {str(folder)!r:.200} is not a saved model folder (no modules.json or config.json there). "
            "Pass the folder a sentence-transformers model was saved to (model.save(path)).",
            field="candidate",
        )
    return folder


def _set_threads(count: int) -> None:
    """Cap torch's and FAISS's CPU threads for this process."""
    import faiss
    import torch

    torch.set_num_threads(count)
    faiss.omp_set_num_threads(count)


def _canonical(name: Any) -> str:
    text = str(name or "").strip()
    if text.lower().startswith("sentence-transformers/"):
        text = text.split("/", 1)[1]
    return text.lower()
