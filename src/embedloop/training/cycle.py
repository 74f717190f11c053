"""One fine-tuning cycle, as a sequence of small stages.

feedback (:func:`gather_feedback`) → held-out set (:func:`holdout`: judgments
when enough exist, else held-out clicks, which then stay out of training) →
examples (:func:`_build_examples`) → train (:func:`train`) → score
(:func:`score`) → pre-check (:func:`judge`) → trial
(``training/trial.py``: the users decide; then promote or reject) — or, with
trials off, promote at once.

Every outcome is recorded in ``training_runs`` with its numbers and reasons:
``skipped`` (not enough feedback, nothing to hold out, a trial is running),
``failed`` (an error; the active version is untouched), ``rejected`` (the
pre-check said no), ``trial`` (the candidate is being judged by users; the
run becomes ``promoted`` or ``rejected`` when the trial ends) or
``promoted`` (trials off: index built first, then the active pointer switched).
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from embedloop.errors import TrainingError
from embedloop.evaluation import RetrievalEvaluator, TripletAccuracyEvaluator
from embedloop.evaluation.precheck import GUARD, PRIMARY, gate_alone, precheck
from embedloop.models.encoder import Encoder, SentenceTransformerEncoder, encode_queries
from embedloop.models.query_side import adapter_encoder, query_model_encoder
from embedloop.registry.exports import remove_exports, served_like, serving_candidate
from embedloop.registry.registry import folder_checksum
from embedloop.search.searcher import ServingState
from embedloop.settings import Settings, TrainingMode
from embedloop.statuses import CycleStatus, VersionStatus
from embedloop.store.locks import Lease, fence, switch_lock, training_lock
from embedloop.store.runs import finish_run, last_trained_seq, set_run_version, start_run
from embedloop.store.trials import open_trial
from embedloop.training.examples import (
    TrainingExample,
    add_mined_negatives,
    cap_examples,
    examples_from_sessions,
    expand_by_weight,
    normalise_query,
    read_domain_examples,
    selected_by_query,
)
from embedloop.training.finetuner import EmbeddingFineTuner
from embedloop.training.query_side import frozen_targets, train_adapter, train_query_encoder
from embedloop.training.services import Services
from embedloop.training.signal import refine_examples
from embedloop.training.split import FeedbackSplit, split_by_query
from embedloop.training.trial import begin_trial, candidate_state, promote
from embedloop.types import FeedbackSession

logger = logging.getLogger(__name__)


def _result(status: str, reasons: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "version": extra.pop("version", None),
        "metrics": extra.pop("metrics", {}),
        "reasons": reasons,
        **extra,
    }


def holdout_evaluators(
    sessions: Sequence[FeedbackSession],
    texts: dict[str, str],
    corpus_ids: list[str],
    corpus_texts: list[str],
    batch_size: int,
) -> tuple[TripletAccuracyEvaluator, RetrievalEvaluator]:
    """Triplet accuracy and retrieval evaluators over held-out sessions.

    The triplet evaluator also reports three position-aware diagnostics of the same (selected, skipped)
    pairs, which the gate does not read: ``skip_above`` keeps only results shown above the selection
    (certainly examined and passed over); ``examined`` weights each pair by how likely its skipped result
    was looked at, ``1 / rank``; ``ips`` also divides by how likely the selection was to be seen
    (``rank_selected / rank_skipped``), so selections deep in the list, where the active model was wrong,
    are not drowned by rank-1 ones.
    """
    triplets: list[tuple[str, str, str]] = []
    ranks: list[tuple[int, int]] = []  # (rank of the selected, rank of the skipped)
    relevant: dict[str, set[str]] = {}
    for s in sessions:
        picked = set(s.selected_ids)
        relevant.setdefault(s.query, set()).update(i for i in picked if i in texts)
        position = {item: r for r, item in enumerate(s.shown, start=1)}
        for item in picked:
            for other in s.shown:
                if other not in picked and item in texts and other in texts:
                    triplets.append((s.query, texts[item], texts[other]))
                    ranks.append((position.get(item, len(s.shown) + 1), position[other]))
    relevant = {q: r for q, r in relevant.items() if r}
    weightings = {
        "skip_above": [1.0 if skip < sel else 0.0 for sel, skip in ranks],
        "examined": [1.0 / skip for _sel, skip in ranks],
        "ips": [sel / skip for sel, skip in ranks],
    }
    return (
        TripletAccuracyEvaluator(triplets, batch_size=batch_size, corpus_texts=corpus_texts, weightings=weightings),
        RetrievalEvaluator(relevant, corpus_ids, corpus_texts, batch_size=batch_size),
    )


def run_cycle(sv: Services, force: bool = False) -> dict[str, Any]:
    """Run one cycle under the single-flight training lock; a running trial makes it ``skipped``."""
    with training_lock(sv.store, ttl_seconds=sv.settings.lock_ttl_seconds) as lease:
        trial = open_trial(sv.store)
        if trial is not None:
            return _result(
                CycleStatus.SKIPPED,
                [
                    f"candidate v{trial['candidate_version']} is on trial (trial {trial['id']}); the next cycle "
                    "runs once the users' selections decide it, or after stop_trial()"
                ],
                trial=trial["id"],
            )
        sv.registry.discard_interrupted(sv.registry.active_version())
        return _cycle(sv, force, lease)


@dataclass
class Window:
    """The feedback a cycle learns from: new events since the last finished cycle, split by query."""

    since: int
    upto: int
    new_events: int
    sessions: list[FeedbackSession]
    split: FeedbackSplit

    @property
    def sizes(self) -> dict[str, int]:
        """Query counts of the split, for results and manifests."""
        return {"train_queries": self.split.train_queries, "holdout_queries": self.split.holdout_queries}


@dataclass
class Holdout:
    """The held-out evaluators and the catalog they rank."""

    triplets: TripletAccuracyEvaluator
    retrieval: RetrievalEvaluator
    catalog: list[Any]
    revision: int
    #: What the held-out set is made of: held-out ``clicks`` or explicit ``judgments``.
    source: str = "clicks"

    @property
    def texts(self) -> list[str]:
        """Catalog texts in catalog order."""
        return [r.text for r in self.catalog]


@dataclass
class Candidate:
    """A trained candidate: its encoder, its catalog vectors and what training reported."""

    version: int
    encoder: Encoder
    info: dict[str, Any]
    corpus: np.ndarray | None = None
    #: The inference backend's export of the candidate (recorded in its manifest; empty with torch).
    exports: dict[str, Any] = field(default_factory=dict)


def gather_feedback(sv: Services, force: bool) -> Window | dict[str, Any]:
    """Stage 1: the feedback window, or a ``skipped`` result saying why there is not enough."""
    s, store = sv.settings, sv.store
    since = last_trained_seq(store)
    upto = store.max_selection_seq()
    new_events = store.count_selections(after_seq=since) if upto > since else 0
    if new_events == 0:
        return _result(CycleStatus.SKIPPED, [f"no new feedback since the last training (event {since})"], new_events=0)
    if new_events < s.fine_tune_threshold and not force:
        return _result(
            CycleStatus.SKIPPED,
            [f"{new_events} new feedback events; fine-tuning needs {s.fine_tune_threshold} (use force to run anyway)"],
            new_events=new_events,
        )
    if not sv.trainable:
        return _result(
            CycleStatus.SKIPPED, ["this loop serves a fixed encoder, which cannot be fine-tuned"], new_events=new_events
        )
    sessions = store.feedback_sessions(upto_seq=upto)
    if not s.replay:
        sessions = [x for x in sessions if x.last_seq > since]
    window = Window(since, upto, new_events, sessions, split_by_query(sessions, s.holdout_fraction))
    if window.split.holdout_queries < s.min_holdout_queries or not window.split.train:
        return _result(
            CycleStatus.SKIPPED,
            [
                f"too little feedback for a meaningful held-out set: {window.split.holdout_queries} held-out and "
                f"{window.split.train_queries} training queries (need at least {s.min_holdout_queries} held-out queries)"
            ],
            new_events=new_events,
            **window.sizes,
        )
    return window


def holdout(sv: Services, held_out: Sequence[FeedbackSession], texts: dict[str, str]) -> Holdout:
    """Stage 2: evaluators over the held-out judgments (when there are enough) or sessions, and the catalog.

    ``texts`` receives every catalog text.
    """
    from embedloop.feedback.judgments import judgment_evaluators, judgment_holdout, overrule_sessions

    revision = sv.store.catalog_revision()  # read first: later changes are re-applied by sync
    catalog = sv.store.catalog()
    texts.update({r.id: r.text for r in catalog})
    ids, corpus = [r.id for r in catalog], [r.text for r in catalog]
    judged = judgment_holdout(sv.store)
    if judged is not None:  # explicit judgments are not biased towards the active model: they judge first
        triplets, retrieval = judgment_evaluators(judged, texts, ids, corpus, sv.settings.encode_batch_size)
        if triplets.triplets:
            return Holdout(triplets, retrieval, catalog, revision, source="judgments")
    sessions = overrule_sessions(sv.store, held_out)  # a judged-irrelevant click is no right answer
    triplets, retrieval = holdout_evaluators(sessions, texts, ids, corpus, sv.settings.encode_batch_size)
    return Holdout(triplets, retrieval, catalog, revision)


def training_sessions(
    window_sessions: Sequence[FeedbackSession], split: FeedbackSplit, source: str
) -> list[FeedbackSession]:
    """The sessions training reads: the split's training share, or every session while judgments judge.

    The held-out clicks exist for the pre-check alone; once held-out judgments judge in their place
    (``source == "judgments"``), keeping those clicks out of training would waste them. The judged
    held-out queries stay out of training either way (``merge_judgments``).
    """
    return list(window_sessions) if source == "judgments" else split.train


def train(
    sv: Services,
    state: ServingState,
    examples: list[TrainingExample],
    texts: dict[str, str],
    corpus: list[str],
    held: Holdout | None = None,
) -> Candidate:
    """Stage 4: train a candidate version in the active version's training mode setting.

    ``held``: with ``auto_averaging``, the mixing weight is chosen on its triplet accuracy.
    """
    s = sv.settings
    version = sv.registry.next_version()
    if s.training_mode is TrainingMode.FULL:
        # auto_averaging reads held-out judgments only: held-out clicks come from the parent's own rankings and
        # pick the parent (alpha 0) whatever training learned (docs/benchmarks-quality.md, "Stop 22")
        select = None
        if s.auto_averaging and held is not None and held.source == "judgments":
            select = partial(_triplet_accuracy, held.triplets)
        trained = EmbeddingFineTuner(s).train(
            # full mode trains from the document generation's model, or from the base (train_from="base")
            sv.model_path(0 if s.train_from == "base" else state.index_version),
            expand_by_weight(examples, s.seed),
            texts,
            sv.registry.model_dir(version),
            distill_texts=corpus,
            select=select,
            reembed_texts=corpus,
        )
        info: dict[str, Any] = {
            "rows": trained.rows,
            "steps": trained.steps,
            "train_loss": trained.train_loss,
            "examples_per_second": round(trained.examples_per_second, 2),
            "train_draws": trained.draws,
        }
        if trained.averaging is not None:
            info["averaging"] = {**trained.averaging, "chosen_on": "judgments"}
        elif s.auto_averaging:
            info["averaging"] = {"alpha": 1.0, "chosen_on": None, "why": "no held-out judgments yet"}
            logger.info("auto_averaging: no held-out judgments yet, so the trained weights are kept")
        # evaluated, put on trial and served on the configured inference backend: like with like
        encoder, exports = serving_candidate(sv.registry, version, s, SentenceTransformerEncoder(trained.model))
        return Candidate(version, encoder, info, exports=exports)
    query_encoder, query_info = _train_query_side(sv, state, examples, texts, version)
    recorded: Any = query_info.pop("exports", None)
    return Candidate(version, query_encoder, query_info, exports=recorded if isinstance(recorded, dict) else {})


def _triplet_accuracy(triplets: TripletAccuracyEvaluator, model: Any) -> float:
    """Held-out triplet accuracy of a sentence-transformers model (auto_averaging's score)."""
    return triplets(SentenceTransformerEncoder(model))[PRIMARY]


def score(
    sv: Services, state: ServingState, held: Holdout, candidate: Candidate, timings: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Stage 5: held-out metrics of the active model and the candidate (full mode embeds the catalog once here)."""
    active_corpus = _catalog_vectors(state, held.catalog)
    active = {**held.triplets(state.encoder, active_corpus), **held.retrieval(state.encoder, active_corpus)}
    if sv.settings.training_mode is TrainingMode.FULL:
        tick = time.perf_counter()
        candidate.corpus = held.retrieval.encode_corpus(candidate.encoder, show_progress=sv.searcher.show_progress)
        timings["reembed_seconds"] = round(time.perf_counter() - tick, 3)
        timings["reembedded_documents"] = len(held.catalog)
    else:
        candidate.corpus = active_corpus  # documents keep the parent's embeddings
        timings["reembed_seconds"], timings["reembedded_documents"] = 0.0, 0
    cand = {
        **held.triplets(candidate.encoder, candidate.corpus),
        **held.retrieval(candidate.encoder, candidate.corpus),
    }
    return {"active": active, "candidate": cand}


def judge(s: Settings, metrics: dict[str, dict[str, float]]) -> list[str]:
    """Stage 6: the pre-check (trials on: fit for a trial?) or the gate (trials off: promote now?)."""
    if s.trials:
        return precheck(
            metrics["active"],
            metrics["candidate"],
            min_accuracy=s.min_accuracy,
            accuracy_drop=s.precheck_accuracy_drop,
            ndcg_drop=s.precheck_ndcg_drop,
        )
    return gate_alone(
        metrics["active"], metrics["candidate"], min_accuracy=s.min_accuracy, tolerance=s.metric_tolerance
    )


def _cycle(sv: Services, force: bool, lease: Lease | None = None) -> dict[str, Any]:
    s, store = sv.settings, sv.store
    window = gather_feedback(sv, force)
    if not isinstance(window, Window):
        return window
    state = sv.state
    parent = state.version
    run_id = start_run(store, parent_version=parent, from_seq=window.since, to_seq=window.upto)
    version: int | None = None
    timings: dict[str, float] = {}
    try:
        texts: dict[str, str] = {}
        held = holdout(sv, window.split.holdout, texts)
        train_on = training_sessions(window.sessions, window.split, held.source)
        sizes = _held_out_sizes(window, held.source)
        held_clicks = sizes.pop("holdout_sessions")
        examples, built, signal = _build_examples(sv, state, train_on, window.sessions, since=window.since)
        texts.update(built)

        def skip(reason: str) -> dict[str, Any]:
            sizes_now = {"train_size": len(examples), "holdout_size": held_clicks}
            finish_run(store, run_id, status=CycleStatus.SKIPPED, reasons=[reason], **sizes_now)
            return _result(CycleStatus.SKIPPED, [reason], new_events=window.new_events, **sizes)

        if len(examples) < s.min_train_examples:
            return skip(f"only {len(examples)} training examples; need {s.min_train_examples}")
        if not held.triplets.triplets:
            return skip("held-out feedback has no skipped results to compare selections against")

        tick = time.perf_counter()
        candidate = train(sv, state, examples, texts, held.texts, held)
        version = candidate.version
        set_run_version(store, run_id, version)
        timings["train_seconds"] = round(time.perf_counter() - tick, 3)
        tick = time.perf_counter()
        metrics = score(sv, state, held, candidate, timings)
        timings["evaluate_seconds"] = round(time.perf_counter() - tick, 3)
        reasons = judge(s, metrics)
        manifest = _manifest(sv, state, window, candidate, len(examples), metrics, run_id, held.source)
        manifest["training"]["signal"] = signal  # what the click model and the margin checks did
        extra = {
            "new_events": window.new_events,
            "train_examples": len(examples),
            "holdout_sessions": held_clicks,
            "holdout_source": held.source,
            **sizes,
        }
        if reasons:
            sv.registry.write_manifest(version, {**manifest, "status": VersionStatus.REJECTED, "reasons": reasons})
            shutil.rmtree(sv.registry.model_dir(version), ignore_errors=True)
            remove_exports(sv.registry, version)
            status = CycleStatus.REJECTED
            logger.info("Candidate v%d stopped by the pre-check: %s", version, "; ".join(reasons))
        elif s.trials:
            tick = time.perf_counter()
            fence(lease)  # a cycle that lost its lock changes nothing
            trained = {e.query for e in examples}
            trial_id = begin_trial(sv, state, candidate, manifest, held, run_id, trained_queries=trained)
            timings["trial_setup_seconds"] = round(time.perf_counter() - tick, 3)
            status = CycleStatus.TRIAL
            reasons = [
                f"pre-check passed ({_summary(metrics)}); candidate v{version} is on trial {trial_id}: "
                f"{s.trial_share:.0%} of searches are interleaved and the users' selections decide"
            ]
            extra["trial"] = trial_id
        else:
            tick = time.perf_counter()
            fresh = candidate_state(sv, state, candidate, held)
            with switch_lock(sv.store):
                fence(lease)  # a cycle that lost its lock changes nothing
                promote(sv, fresh, manifest)
            timings["promote_seconds"] = round(time.perf_counter() - tick, 3)
            status = CycleStatus.PROMOTED
            reasons = [
                f"held-out feedback alone decided (trials off: no users judged this candidate): {_summary(metrics)}"
            ]
        finish_run(
            store,
            run_id,
            status=status,
            version=version,
            train_size=len(examples),
            holdout_size=held_clicks,
            metrics={**metrics, "timings": timings},
            reasons=reasons,
        )
        return _result(status, reasons, version=version, metrics=metrics, timings=timings, **extra)
    except BaseException as exc:  # the active version must survive anything a cycle does, SIGINT/SIGTERM included
        if isinstance(exc, Exception):
            logger.exception("Fine-tuning cycle failed")
        else:
            logger.warning("Fine-tuning cycle interrupted (%s); closing its run.", type(exc).__name__)
        if version is not None and sv.registry.active_version() != version:
            if sv.registry.exists(version):
                sv.registry.update(version, status=VersionStatus.FAILED, failure=str(exc))
            shutil.rmtree(sv.registry.model_dir(version), ignore_errors=True)
            shutil.rmtree(sv.searcher.index_dir(version), ignore_errors=True)
            remove_exports(sv.registry, version)
            sv.registry.discard_folder(version)
        reasons = [f"{type(exc).__name__}: {exc}" if str(exc) else f"interrupted ({type(exc).__name__})"]
        finish_run(store, run_id, status=CycleStatus.FAILED, version=version, reasons=reasons)
        if not isinstance(exc, Exception):
            raise
        return _result(CycleStatus.FAILED, reasons, version=version, timings=timings)


def _held_out_sizes(window: Window, source: str) -> dict[str, int]:
    """Held-out click sessions and the query split; while judgments judge, every click query trains."""
    if source == "judgments":
        return {"holdout_sessions": 0, "train_queries": sum(window.sizes.values()), "holdout_queries": 0}
    return {"holdout_sessions": len(window.split.holdout), **window.sizes}


def _summary(metrics: dict[str, dict[str, float]]) -> str:
    active, cand = metrics["active"], metrics["candidate"]
    return (
        f"held-out triplet accuracy {active[PRIMARY]:.3f} -> {cand[PRIMARY]:.3f}, "
        f"{GUARD} {active[GUARD]:.4f} -> {cand[GUARD]:.4f}"
    )


def _manifest(
    sv: Services,
    state: ServingState,
    window: Window,
    candidate: Candidate,
    train_examples: int,
    metrics: dict[str, dict[str, float]],
    run_id: int,
    held_source: str = "clicks",
) -> dict[str, Any]:
    s = sv.settings
    mode, version, parent = s.training_mode, candidate.version, state.version
    return {
        "parent": parent,
        "base_model": s.embedding_model,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kind": "trained",
        "mode": mode.value,
        "doc_generation": version if mode is TrainingMode.FULL else state.index_version,
        "needs": _needs(mode, version, parent, state.index_version),
        "feedback_window": {"from_seq": window.since, "to_seq": window.upto, "replay": s.replay},
        "training": {
            "loss": s.loss.value,
            "learning_rate": s.learning_rate,
            "epochs": s.epochs,
            "batch_size": s.train_batch_size,
            "hard_negatives": s.hard_negatives,
            "position_bias": s.position_bias,
            "distill_weight": s.distill_weight,
            "seed": s.seed,
            "train_draws": s.train_draws,
            **candidate.info,
        },
        "train_examples": train_examples,
        **_held_out_sizes(window, held_source),
        "metrics": metrics,
        "primary_metric": PRIMARY,
        "judged_by": "trial" if s.trials else "held-out feedback",
        "holdout_source": held_source,
        "checksum": folder_checksum(sv.registry.model_dir(version)),
        "exports": candidate.exports,
        "run_id": run_id,
    }


def _needs(mode: TrainingMode, version: int, parent: int, doc_generation: int) -> dict[str, Any]:
    """What serving ``version`` requires, for operators reading the manifest."""
    if mode is TrainingMode.FULL:
        return {"weights": "model/", "index": f"indexes/v{version:04d}"}
    needs: dict[str, Any] = {"index": f"indexes/v{doc_generation:04d}", "document_encoder": doc_generation}
    if mode is TrainingMode.ADAPTER:
        needs.update(adapter="model/adapter.pt", query_base=parent)
    else:
        needs.update(query_encoder="model/")
    return needs


def _query_model_path(sv: Services, version: int) -> Path:
    """The sentence-transformers folder that embeds queries for ``version`` (adapters: their base's)."""
    manifest = sv.registry.manifest(version)
    mode = manifest.get("mode", "full")
    if mode == "adapter":
        return _query_model_path(sv, int(manifest["parent"]))
    if mode == "query_encoder":
        return sv.registry.model_dir(version)
    return sv.model_path(version)


def _train_query_side(
    sv: Services, state: ServingState, examples: list[TrainingExample], texts: dict[str, str], version: int
) -> tuple[Encoder, dict[str, Any]]:
    """Train an adapter or a query encoder against the active document embeddings."""
    s = sv.settings
    docs = getattr(state.encoder, "doc_encoder", state.encoder)
    key_of = {item_id: key for key, (item_id, _text) in state.items.items()}

    def vector_of(ids: list[str]) -> np.ndarray:
        out = np.zeros((len(ids), state.index.dimension), dtype=np.float32)
        held = [i for i, x in enumerate(ids) if x in key_of]
        if held:
            out[held] = state.index.vectors([key_of[ids[i]] for i in held])
        other = [i for i, x in enumerate(ids) if x not in key_of]  # deleted since: embed as the generation did
        if other:
            out[other] = docs.encode([texts[ids[i]] for i in other])
        return out

    data = frozen_targets(expand_by_weight(examples, s.seed), vector_of, lambda t: docs.encode(t), s.hard_negatives)
    if not data.queries:
        raise TrainingError("No training rows could be built from the examples.")
    out_dir = sv.registry.model_dir(version)
    if s.training_mode is TrainingMode.ADAPTER:
        base = encode_queries(state.encoder, data.queries, batch_size=s.encode_batch_size)
        adapter, info = train_adapter(s, data, base, out_dir)
        encoder: Encoder = adapter_encoder(state.encoder, docs, adapter)
    else:
        model, info = train_query_encoder(s, data, _query_model_path(sv, state.version), out_dir)
        query_model, info["exports"] = serving_candidate(sv.registry, version, s, SentenceTransformerEncoder(model))
        encoder = query_model_encoder(query_model, docs)
    info["examples_per_second"] = round(info["rows"] / info["seconds"], 2) if info["seconds"] else 0.0
    return encoder, info


def _catalog_vectors(state: ServingState, catalog: Sequence[Any]) -> np.ndarray:
    """The serving index's vectors for ``catalog``, encoding any item it does not hold yet."""
    held = set(state.items)
    vectors = np.zeros((len(catalog), state.index.dimension), dtype=np.float32)
    have = [i for i, r in enumerate(catalog) if r.key in held]
    if have:
        vectors[have] = state.index.vectors([catalog[i].key for i in have])
    missing = [i for i, r in enumerate(catalog) if r.key not in held]
    if missing:
        vectors[missing] = state.encoder.encode([catalog[i].text for i in missing])
    return vectors


def evaluate_active(sv: Services, candidate: Path | None = None) -> dict[str, Any]:
    """Held-out metrics of the active model on the current feedback (the split a cycle would use).

    With ``candidate`` (a model folder, e.g. trained under ``torchrun``), it is
    scored too and the gate's verdict is returned — nothing is promoted.
    """
    s = sv.settings
    state = sv.state
    split = split_by_query(sv.store.feedback_sessions(), s.holdout_fraction)
    catalog = sv.store.catalog()
    texts = {r.id: r.text for r in catalog}
    triplet_eval, retrieval_eval = holdout_evaluators(
        split.holdout, texts, [r.id for r in catalog], [r.text for r in catalog], s.encode_batch_size
    )
    metrics = {**triplet_eval(state.encoder), **retrieval_eval(state.encoder, _catalog_vectors(state, catalog))}
    out: dict[str, Any] = {
        "version": state.version,
        "metrics": metrics,
        "holdout_queries": split.holdout_queries,
        "holdout_sessions": len(split.holdout),
        "primary_metric": PRIMARY,
    }
    if candidate is not None:
        trained = SentenceTransformerEncoder.load(candidate, device=s.device, max_seq_length=s.max_seq_length)
        with served_like(candidate, s, trained) as encoder:  # the backend it would be served with
            cand = {**triplet_eval(encoder), **retrieval_eval(encoder)}
            out["candidate_backend"] = getattr(encoder, "backend", "torch")
        out["candidate_metrics"] = cand
        out["gate_reasons"] = judge(s, {"active": metrics, "candidate": cand})
        out["would_promote"] = not out["gate_reasons"]
        out["judged_by"] = "pre-check (a trial would follow)" if s.trials else "held-out feedback"
    return out


def next_training_examples(sv: Services) -> tuple[list[TrainingExample], dict[str, str]]:
    """The training examples (and item texts) the next cycle would use."""
    sessions = sv.store.feedback_sessions()
    split = split_by_query(sessions, sv.settings.holdout_fraction)
    held = holdout(sv, split.holdout, {})
    train_on = training_sessions(sessions, split, held.source)
    examples, texts, _signal = _build_examples(sv, sv.state, train_on, sessions, since=last_trained_seq(sv.store))
    return examples, texts


def _build_examples(
    sv: Services,
    state: ServingState,
    train: list[FeedbackSession],
    all_sessions: list[FeedbackSession],
    *,
    since: int = 0,
) -> tuple[list[TrainingExample], dict[str, str], dict[str, Any]]:
    """Stage 3: training examples from the training sessions, the texts they name, what the signal options did."""
    s = sv.settings
    guard = selected_by_query(all_sessions)
    sources = tuple(x.strip() for x in s.negative_sources.split(",") if x.strip())
    examples = examples_from_sessions(
        train, guard=guard, position_bias=s.position_bias, sources=sources, safe=s.safe_negatives
    )
    # explicit judgments are trusted labels: clicks never overrule them (feedback/judgments.py)
    from embedloop.feedback.judgments import judgment_holdout, merge_judgments

    examples = merge_judgments(sv.store, examples, guard, holdout=judgment_holdout(sv.store))

    def mine(queries: list[str], n: int) -> list[list[str]]:
        vectors = encode_queries(state.encoder, queries, batch_size=s.encode_batch_size)
        with state.lock:
            scores, keys = state.index.search(vectors, n)
            return [[state.items[int(k)][0] for k in row if k >= 0 and int(k) in state.items] for row in keys]

    mined = add_mined_negatives(examples, mine, guard=guard, per_example=s.hard_negatives) if "mined" in sources else 0
    # the training signal's options: click-model positives and margin-checked negatives (training/signal.py)
    examples, signal = refine_examples(examples, settings=s, store=sv.store, state=state, guard=guard)
    # replay makes the training set grow with the traffic: bound it, newest window first (examples.py)
    examples = cap_examples(examples, s.max_train_examples, since=since)
    ids = {ex.positive for ex in examples} | {n for ex in examples for n in ex.negatives}
    texts = sv.store.iter_item_texts(ids)
    examples = [ex for ex in examples if ex.positive in texts]
    _pad_negatives(examples, list(state.items.values()), guard, s.hard_negatives, s.seed)
    if s.domain_examples_path is not None:
        examples.extend(read_domain_examples(s.domain_examples_path))
    logger.info("Built %d training examples (%d mined negatives)", len(examples), mined)
    return examples, texts, signal


def _pad_negatives(
    examples: list[TrainingExample], catalog: list[tuple[str, str]], guard: dict[str, set[str]], n: int, seed: int
) -> None:
    """Give every example at least ``n`` negatives, with random catalog items if need be."""
    rng = random.Random(seed)
    ids = [i for i, _t in catalog]
    if not ids:
        return
    for ex in examples:
        never = guard.get(normalise_query(ex.query), set())
        tries = 0
        while len(ex.negatives) < n and tries < 10 * n:
            tries += 1
            pick = rng.choice(ids)
            if pick != ex.positive and pick not in never and pick not in ex.negatives:
                ex.negatives.append(pick)
