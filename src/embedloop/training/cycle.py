"""One fine-tuning cycle: feedback → examples → candidate → held-out gate → promote or keep.

Every outcome is recorded in ``training_runs`` with its numbers and reasons:
``skipped`` (not enough feedback, nothing to hold out), ``failed`` (an error;
the active version is untouched), ``rejected`` (the gate said no) or
``promoted`` (index built first, then the active pointer switched).
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedloop.evaluation import RetrievalEvaluator, TripletAccuracyEvaluator
from embedloop.index.faiss_index import VectorIndex
from embedloop.models.encoder import Encoder, SentenceTransformerEncoder, encode_queries
from embedloop.models.query_side import adapter_encoder, query_model_encoder
from embedloop.registry.registry import folder_checksum
from embedloop.serving.searcher import ServingState
from embedloop.settings import TrainingMode
from embedloop.store.locks import training_lock
from embedloop.training.examples import (
    TrainingExample,
    add_mined_negatives,
    examples_from_sessions,
    expand_by_weight,
    normalise_query,
    read_domain_examples,
    selected_by_query,
)
from embedloop.training.finetuner import EmbeddingFineTuner
from embedloop.training.query_side import frozen_targets, train_adapter, train_query_encoder
from embedloop.training.runs import finish_run, last_trained_seq, start_run
from embedloop.training.signal import refine_examples  # issue 11
from embedloop.training.split import split_by_query

if TYPE_CHECKING:
    from embedloop.loop import EmbedLoop

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
    sessions: Sequence[dict[str, Any]],
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
        picked = {item for item, _r, _s in s["selected"]}
        relevant.setdefault(s["query"], set()).update(i for i in picked if i in texts)
        position = {item: r for r, item in enumerate(s["shown"], start=1)}
        for item in picked:
            for other in s["shown"]:
                if other not in picked and item in texts and other in texts:
                    triplets.append((s["query"], texts[item], texts[other]))
                    ranks.append((position.get(item, len(s["shown"]) + 1), position[other]))
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


#: The gate's primary metric: the spec's accuracy (selected vs skipped, on held-out feedback).
PRIMARY = "triplet_accuracy"
#: The forgetting guard: ranking of held-out selections over the whole catalog.
GUARD = "retrieval_ndcg@10"


def gate(active: dict[str, float], candidate: dict[str, float], *, min_accuracy: float, tolerance: float) -> list[str]:
    """Reasons to reject the candidate; empty means promote.

    Promote only if nothing is NaN, the candidate's triplet accuracy reaches
    ``min_accuracy`` *and* is not below the active model's (an absolute bar
    alone is not enough: an untrained model can pass 70 %), the candidate is
    not a no-op (identical held-out scores), and its NDCG@10 over the whole
    catalog is at most ``tolerance`` below the active model's. The
    tolerance exists because held-out selections were made from the active
    model's own top results, which favours it on catalog-wide ranking metrics.
    """
    reasons = []
    nan = [k for k, v in candidate.items() if isinstance(v, float) and math.isnan(v)]
    if nan:
        reasons.append(f"candidate metrics are NaN: {', '.join(sorted(nan))}")
    acc, acc_active = candidate.get(PRIMARY, float("nan")), active.get(PRIMARY, float("nan"))
    if not acc >= min_accuracy:
        reasons.append(f"triplet accuracy {acc:.3f} is below the required {min_accuracy:.2f}")
    if not acc >= acc_active:
        reasons.append(f"triplet accuracy {acc:.4f} is worse than the active model's {acc_active:.4f}")
    if all(candidate.get(k) == active.get(k) for k in active):
        reasons.append("the candidate scores exactly like the active model on every held-out metric (nothing learned)")
    cand, base = candidate.get(GUARD, float("nan")), active.get(GUARD, float("nan"))
    if not cand >= base - tolerance:
        reasons.append(f"{GUARD} {cand:.4f} fell more than {tolerance} below the active model's {base:.4f}")
    return reasons


def run_cycle(loop: EmbedLoop, force: bool = False) -> dict[str, Any]:
    """Run one cycle under the single-flight training lock."""
    with training_lock(loop.store, ttl_seconds=loop.settings.lock_ttl_seconds):
        loop.registry.discard_interrupted(loop.registry.active_version())
        return _cycle(loop, force)


def _cycle(loop: EmbedLoop, force: bool) -> dict[str, Any]:
    s = loop.settings
    store = loop.store
    since = last_trained_seq(store)
    upto = store.max_selection_seq()
    new_events = store.count_selections(after_seq=since) if upto > since else 0
    if new_events == 0:
        return _result("skipped", [f"no new feedback since the last training (event {since})"], new_events=0)
    if new_events < s.fine_tune_threshold and not force:
        return _result(
            "skipped",
            [f"{new_events} new feedback events; fine-tuning needs {s.fine_tune_threshold} (use force to run anyway)"],
            new_events=new_events,
        )
    if not loop.trainable:
        return _result(
            "skipped", ["this loop serves a fixed encoder, which cannot be fine-tuned"], new_events=new_events
        )
    sessions = store.feedback_sessions(upto_seq=upto)
    if not s.replay:
        sessions = [x for x in sessions if x["last_seq"] > since]
    split = split_by_query(sessions, s.holdout_fraction)
    sizes = {"train_queries": split.train_queries, "holdout_queries": split.holdout_queries}
    if split.holdout_queries < s.min_holdout_queries or not split.train:
        return _result(
            "skipped",
            [
                f"too little feedback for a meaningful held-out set: {split.holdout_queries} held-out and "
                f"{split.train_queries} training queries (need at least {s.min_holdout_queries} held-out queries)"
            ],
            new_events=new_events,
            **sizes,
        )
    state = loop.searcher.state
    assert state is not None
    parent = state.version
    run_id = start_run(store, parent_version=parent, from_seq=since, to_seq=upto)
    version: int | None = None
    timings: dict[str, float] = {}
    try:
        examples, texts = _build_examples(loop, state, split.train, sessions)

        def skip(reason: str) -> dict[str, Any]:
            sizes_now = {"train_size": len(examples), "holdout_size": len(split.holdout)}
            finish_run(store, run_id, status="skipped", reasons=[reason], **sizes_now)
            return _result("skipped", [reason], new_events=new_events, **sizes)

        if len(examples) < s.min_train_examples:
            return skip(f"only {len(examples)} training examples; need {s.min_train_examples}")
        catalog_revision = store.catalog_revision()  # read first: later changes are re-applied by sync
        catalog = store.catalog()
        corpus_ids, corpus_texts = [r.id for r in catalog], [r.text for r in catalog]
        texts.update({r.id: r.text for r in catalog})
        triplet_eval, retrieval_eval = holdout_evaluators(
            split.holdout, texts, corpus_ids, corpus_texts, s.encode_batch_size
        )
        if not triplet_eval.triplets:
            return skip("held-out feedback has no skipped results to compare selections against")

        version = loop.registry.next_version()
        mode = s.training_mode
        active_corpus = _catalog_vectors(state, catalog)
        tick = time.perf_counter()
        if mode is TrainingMode.FULL:
            trained = EmbeddingFineTuner(s).train(
                # full mode trains from the document generation's model; issue 11: or from the base (train_from)
                loop.model_path(0 if s.train_from == "base" else state.index_version),
                expand_by_weight(examples, s.seed),
                texts,
                loop.registry.model_dir(version),
                distill_texts=corpus_texts,
            )
            candidate_encoder: Encoder = SentenceTransformerEncoder(trained.model)
            train_info = {
                "rows": trained.rows,
                "steps": trained.steps,
                "train_loss": trained.train_loss,
                "examples_per_second": round(trained.examples_per_second, 2),
            }
        else:
            candidate_encoder, train_info = _train_query_side(loop, state, examples, texts, version)
        timings["train_seconds"] = round(time.perf_counter() - tick, 3)

        tick = time.perf_counter()
        active_metrics = {**triplet_eval(state.encoder, active_corpus), **retrieval_eval(state.encoder, active_corpus)}
        if mode is TrainingMode.FULL:
            reembed_tick = time.perf_counter()
            candidate_corpus = retrieval_eval.encode_corpus(
                candidate_encoder, show_progress=loop.searcher.show_progress
            )
            timings["reembed_seconds"] = round(time.perf_counter() - reembed_tick, 3)
            timings["reembedded_documents"] = len(corpus_texts)
        else:
            candidate_corpus = active_corpus  # documents keep the parent's embeddings
            timings["reembed_seconds"], timings["reembedded_documents"] = 0.0, 0
        candidate_metrics = {
            **triplet_eval(candidate_encoder, candidate_corpus),
            **retrieval_eval(candidate_encoder, candidate_corpus),
        }
        timings["evaluate_seconds"] = round(time.perf_counter() - tick, 3)
        metrics = {"active": active_metrics, "candidate": candidate_metrics}
        reasons = gate(
            active_metrics,
            candidate_metrics,
            min_accuracy=s.min_accuracy,
            tolerance=s.metric_tolerance,
        )
        manifest = {
            "parent": parent,
            "base_model": s.embedding_model,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "kind": "trained",
            "mode": mode.value,
            "doc_generation": version if mode is TrainingMode.FULL else state.index_version,
            "needs": _needs(mode, version, parent, state.index_version),
            "feedback_window": {"from_seq": since, "to_seq": upto, "replay": s.replay},
            "training": {
                "loss": s.loss.value,
                "learning_rate": s.learning_rate,
                "epochs": s.epochs,
                "batch_size": s.train_batch_size,
                "hard_negatives": s.hard_negatives,
                "position_bias": s.position_bias,
                "distill_weight": s.distill_weight,
                "seed": s.seed,
                **train_info,
            },
            "train_examples": len(examples),
            "holdout_sessions": len(split.holdout),
            **sizes,
            "metrics": metrics,
            "primary_metric": PRIMARY,
            "checksum": folder_checksum(loop.registry.model_dir(version)),
            "run_id": run_id,
        }
        if reasons:
            loop.registry.write_manifest(version, {**manifest, "status": "rejected", "reasons": reasons})
            shutil.rmtree(loop.registry.model_dir(version), ignore_errors=True)
            status = "rejected"
            logger.info("Candidate v%d rejected: %s", version, "; ".join(reasons))
        else:
            tick = time.perf_counter()
            if mode is TrainingMode.FULL:
                _promote(loop, version, manifest, candidate_encoder, catalog, catalog_revision, candidate_corpus)
            else:
                _promote_query_side(loop, version, manifest, candidate_encoder, state)
            timings["promote_seconds"] = round(time.perf_counter() - tick, 3)
            status = "promoted"
            reasons = [
                f"triplet accuracy {candidate_metrics[PRIMARY]:.3f} >= {s.min_accuracy:.2f} and >= active "
                f"{active_metrics[PRIMARY]:.3f}; {GUARD} {candidate_metrics[GUARD]:.4f} vs active "
                f"{active_metrics[GUARD]:.4f} (tolerance {s.metric_tolerance})"
            ]
        finish_run(
            store,
            run_id,
            status=status,
            version=version,
            train_size=len(examples),
            holdout_size=len(split.holdout),
            metrics={**metrics, "timings": timings},
            reasons=reasons,
        )
        return _result(
            status,
            reasons,
            version=version,
            metrics=metrics,
            new_events=new_events,
            train_examples=len(examples),
            holdout_sessions=len(split.holdout),
            timings=timings,
            **sizes,
        )
    except Exception as exc:  # the active version must survive anything a cycle does
        logger.exception("Fine-tuning cycle failed")
        if version is not None and loop.registry.active_version() != version:
            if loop.registry.exists(version):
                loop.registry.update(version, status="failed", failure=str(exc))
            shutil.rmtree(loop.registry.model_dir(version), ignore_errors=True)
            loop.registry.discard_folder(version)
        reasons = [f"{type(exc).__name__}: {exc}"]
        finish_run(store, run_id, status="failed", version=version, reasons=reasons)
        return _result("failed", reasons, version=version, timings=timings)


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


def _query_model_path(loop: EmbedLoop, version: int) -> Path:
    """The sentence-transformers folder that embeds queries for ``version`` (adapters: their base's)."""
    manifest = loop.registry.manifest(version)
    mode = manifest.get("mode", "full")
    if mode == "adapter":
        return _query_model_path(loop, int(manifest["parent"]))
    if mode == "query_encoder":
        return loop.registry.model_dir(version)
    return loop.model_path(version)


def _train_query_side(
    loop: EmbedLoop, state: ServingState, examples: list[TrainingExample], texts: dict[str, str], version: int
) -> tuple[Encoder, dict[str, Any]]:
    """Train an adapter or a query encoder against the active document embeddings."""
    s = loop.settings
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
        raise ValueError("No training rows could be built from the examples.")
    out_dir = loop.registry.model_dir(version)
    if s.training_mode is TrainingMode.ADAPTER:
        base = encode_queries(state.encoder, data.queries, batch_size=s.encode_batch_size)
        adapter, info = train_adapter(s, data, base, out_dir)
        encoder: Encoder = adapter_encoder(state.encoder, docs, adapter)
    else:
        model, info = train_query_encoder(s, data, _query_model_path(loop, state.version), out_dir)
        encoder = query_model_encoder(SentenceTransformerEncoder(model), docs)
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


def evaluate_active(loop: EmbedLoop, candidate: Path | None = None) -> dict[str, Any]:
    """Held-out metrics of the active model on the current feedback (the split a cycle would use).

    With ``candidate`` (a model folder, e.g. trained under ``torchrun``), it is
    scored too and the gate's verdict is returned — nothing is promoted.
    """
    s = loop.settings
    state = loop.searcher.state
    assert state is not None
    split = split_by_query(loop.store.feedback_sessions(), s.holdout_fraction)
    catalog = loop.store.catalog()
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
        encoder = SentenceTransformerEncoder.load(candidate, device=s.device, max_seq_length=s.max_seq_length)
        cand = {**triplet_eval(encoder), **retrieval_eval(encoder)}
        out["candidate_metrics"] = cand
        out["gate_reasons"] = gate(metrics, cand, min_accuracy=s.min_accuracy, tolerance=s.metric_tolerance)
        out["would_promote"] = not out["gate_reasons"]
    return out


def next_training_examples(loop: EmbedLoop) -> tuple[list[TrainingExample], dict[str, str]]:
    """The training examples (and item texts) the next cycle would use."""
    state = loop.searcher.state
    assert state is not None
    sessions = loop.store.feedback_sessions()
    split = split_by_query(sessions, loop.settings.holdout_fraction)
    return _build_examples(loop, state, split.train, sessions)


def _build_examples(
    loop: EmbedLoop, state: ServingState, train: list[dict[str, Any]], all_sessions: list[dict[str, Any]]
) -> tuple[list[TrainingExample], dict[str, str]]:
    s = loop.settings
    guard = selected_by_query(all_sessions)
    sources = tuple(x.strip() for x in s.negative_sources.split(",") if x.strip())
    examples = examples_from_sessions(
        train,
        guard=guard,
        position_bias=s.position_bias,
        sources=sources,
        safe=s.safe_negatives,  # issue 11: safe
    )

    def mine(queries: list[str], n: int) -> list[list[str]]:
        vectors = encode_queries(state.encoder, queries, batch_size=s.encode_batch_size)
        with state.lock:
            scores, keys = state.index.search(vectors, n)
            return [[state.items[int(k)][0] for k in row if k >= 0 and int(k) in state.items] for row in keys]

    mined = add_mined_negatives(examples, mine, guard=guard, per_example=s.hard_negatives) if "mined" in sources else 0
    # issue 11 (training signal): click-model positives and margin-checked negatives, per Settings
    examples, _signal = refine_examples(examples, settings=s, store=loop.store, state=state, guard=guard)
    ids = {ex.positive for ex in examples} | {n for ex in examples for n in ex.negatives}
    texts = loop.store.iter_item_texts(ids)
    examples = [ex for ex in examples if ex.positive in texts]
    _pad_negatives(examples, list(state.items.values()), guard, s.hard_negatives, s.seed)
    if s.domain_examples_path is not None:
        examples.extend(read_domain_examples(s.domain_examples_path))
    logger.info("Built %d training examples (%d mined negatives)", len(examples), mined)
    return examples, texts


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


def _promote(
    loop: EmbedLoop,
    version: int,
    manifest: dict[str, Any],
    encoder: Encoder,
    catalog: Sequence[Any],
    catalog_revision: int,
    corpus: np.ndarray,
) -> None:
    """Build the new version's index first, then switch the active pointer (one rename)."""
    loop.registry.write_manifest(version, {**manifest, "status": "candidate"})
    index = VectorIndex(encoder.dimension, revision=catalog_revision)
    index.upsert([r.key for r in catalog], corpus)
    state = ServingState(version, encoder, index, {r.key: (r.id, r.text) for r in catalog})
    loop.searcher.sync(state)  # catalog changes made while training
    state.index.save(loop.searcher.index_dir(version))
    loop.activate_state(state)
    loop.remember_encoder(version, encoder)


def _promote_query_side(
    loop: EmbedLoop, version: int, manifest: dict[str, Any], encoder: Encoder, active: ServingState
) -> None:
    """Switch to a query-side version: it shares the active document embeddings, nothing is re-embedded."""
    loop.registry.write_manifest(version, {**manifest, "status": "candidate"})
    state = ServingState(version, encoder, active.index, active.items, active.lock, active.index_version)
    loop.activate_state(state)
    loop.remember_encoder(version, encoder)
