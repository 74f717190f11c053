"""A candidate's trial: served next to the active model, decided by the users' selections.

Life of a candidate that passed the pre-check (``training/cycle.py``):

1. :func:`begin_trial` writes the candidate's manifest (status ``trial``), saves
   its index (full mode: the catalog vectors computed for evaluation, so
   nothing is embedded twice), opens the ``trials`` row and starts serving it
   in this process. Other processes pick it up from the store.
2. While it runs, a share of searches is interleaved (``search/interleave.py``);
   every selection on such a search, and the scheduler's tick, calls
   :func:`check_trial`, which recomputes the evidence from the store and asks
   the sequential test (``evaluation/trial_test.py``).
3. A decision is claimed by one conditional update of the trial row, so it is
   taken exactly once however many processes check. Promotion then switches
   the registry's active pointer (``promoting`` -> ``promoted``); a process that
   dies in between leaves the trial ``promoting``, and the next check completes
   the switch. Rejection retires the candidate's files.
"""

from __future__ import annotations

import logging
import shutil
import weakref
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from embedloop.errors import TrainingInProgressError, TrialError
from embedloop.evaluation.trial_test import JUDGED_DEPTH, SequentialTest, TrialEvidence, Verdict, judged_outcome
from embedloop.feedback.persistence import count_judgments, current_labels
from embedloop.feedback.review import state_ranker
from embedloop.index.faiss_index import VectorIndex
from embedloop.registry.exports import remove_exports
from embedloop.search.searcher import ServingState
from embedloop.settings import TrainingMode, TrialQueries
from embedloop.statuses import VersionStatus
from embedloop.store.locks import switch_lock
from embedloop.store.runs import update_run
from embedloop.store.trials import (
    PROMOTED,
    PROMOTING,
    REJECTED,
    RUNNING,
    STOPPED,
    claim,
    evidence,
    finish,
    open_trial,
    query_key,
    start_trial,
)
from embedloop.training.services import Services

logger = logging.getLogger(__name__)

#: What a decided trial records as its outcome (run, manifest, trials row).
OUTCOME_KEYS = ("searches", "wins", "losses", "ties", "judged_wins", "judged_losses", "win_rate", "z", "statistic")


def test_of(trial: dict[str, Any]) -> SequentialTest:
    """The sequential test with the settings the trial started with."""
    return SequentialTest(
        alpha=float(trial["alpha"]),
        beta=float(trial["beta"]),
        min_effect=float(trial["min_effect"]),
        max_searches=int(trial["max_searches"]),
    )


def promote(sv: Services, state: ServingState, manifest: dict[str, Any]) -> None:
    """Switch to a fully built candidate state now (trials off): manifest, then the active pointer."""
    sv.registry.write_manifest(state.version, {**manifest, "status": VersionStatus.CANDIDATE})
    sv.activate_state(state)
    sv.remember_encoder(state.version, state.encoder)


def candidate_state(sv: Services, state: ServingState, candidate: Any, held: Any) -> ServingState:
    """The candidate's serving state: full mode indexes the vectors from evaluation (no second re-embedding);
    query-side modes share the active document embeddings."""
    if sv.settings.training_mode is not TrainingMode.FULL:
        return ServingState(
            candidate.version, candidate.encoder, state.index, state.items, state.lock, state.index_version
        )
    assert candidate.corpus is not None  # score() filled it
    index = VectorIndex(candidate.encoder.dimension, revision=held.revision)
    index.upsert([r.key for r in held.catalog], candidate.corpus)
    fresh = ServingState(candidate.version, candidate.encoder, index, {r.key: (r.id, r.text) for r in held.catalog})
    sv.searcher.sync(fresh)  # catalog changes made while training
    fresh.index.save(sv.searcher.index_dir(candidate.version))
    return fresh


def begin_trial(
    sv: Services,
    state: ServingState,
    candidate: Any,
    manifest: dict[str, Any],
    held: Any,
    run_id: int | None,
    trained_queries: Iterable[str] = (),
) -> int:
    """Put a pre-checked candidate on trial; returns the trial id.

    ``trained_queries``: the queries of the candidate's training examples; with
    ``trial_queries="unseen"`` their searches are not interleaved.
    """
    s = sv.settings
    fresh = candidate_state(sv, state, candidate, held)
    skip = sorted({query_key(q) for q in trained_queries}) if s.trial_queries == TrialQueries.UNSEEN else None
    trial_id = start_trial(
        sv.store,
        candidate_version=candidate.version,
        active_version=state.version,
        run_id=run_id,
        share=s.trial_share,
        max_searches=s.trial_max_searches,
        alpha=s.trial_alpha,
        beta=s.trial_beta,
        min_effect=s.trial_min_effect,
        skip_queries=skip,
    )
    sv.registry.write_manifest(candidate.version, {**manifest, "status": VersionStatus.TRIAL, "trial_id": trial_id})
    sv.remember_encoder(candidate.version, candidate.encoder)
    sv.serve_candidate(fresh)
    logger.info(
        "Candidate v%d is on trial %d against v%d (%.0f%% of searches interleaved)",
        candidate.version,
        trial_id,
        state.version,
        100 * s.trial_share,
    )
    return trial_id


#: Judged outcomes computed in this process: (store, trial id) -> (what they were computed from, (wins, losses)).
_JUDGED: weakref.WeakKeyDictionary[Any, dict[int, tuple[tuple[Any, ...], tuple[int, int]]]] = (
    weakref.WeakKeyDictionary()
)


def judged_outcomes(sv: Services, trial: dict[str, Any]) -> tuple[int, int]:
    """(judged wins, judged losses) of the candidate over the queries judged since the trial started.

    Both models rank each judged query (top :data:`JUDGED_DEPTH`) and
    :func:`judged_outcome` compares them. Needs both serving states in this
    process (every serving process loads the trial's candidate); without them
    the trial counts clicks only. Recomputed only when the judgments, the
    catalog or the states change.
    """
    active, candidate = sv.searcher.loaded_state, sv.searcher.candidate
    if active is None or candidate is None or candidate.version != int(trial["candidate_version"]):
        return 0, 0
    started = datetime.fromisoformat(str(trial["started_at"]))
    stamp = (count_judgments(sv.store, since=started), sv.store.catalog_revision(), active.version, candidate.version)
    cached = _JUDGED.setdefault(sv.store, {}).get(int(trial["id"]))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    labels = {
        k: (q, {i for i, rel in lab.items() if rel}) for k, (q, lab) in current_labels(sv.store, since=started).items()
    }
    judged = [(q, relevant) for q, relevant in labels.values() if relevant]
    wins = losses = 0
    if judged:
        queries = [q for q, _r in judged]
        batch = sv.settings.encode_batch_size
        ranked_active = state_ranker(active, batch)(queries, JUDGED_DEPTH)
        ranked_candidate = state_ranker(candidate, batch)(queries, JUDGED_DEPTH)
        for (_q, relevant), mine, theirs in zip(judged, ranked_active, ranked_candidate, strict=True):
            outcome = judged_outcome(relevant, [i for i, _s in mine], [i for i, _s in theirs])
            wins += outcome > 0
            losses += outcome < 0
    _JUDGED[sv.store][int(trial["id"])] = (stamp, (wins, losses))
    return wins, losses


def trial_evidence(sv: Services, trial: dict[str, Any]) -> TrialEvidence:
    """The trial's evidence: its searches' outcomes (from the store) and the judged queries' (this process)."""
    searched = evidence(sv.store, int(trial["id"]))
    judged_wins, judged_losses = judged_outcomes(sv, trial)
    return replace(searched, judged_wins=judged_wins, judged_losses=judged_losses)


def trial_status(sv: Services) -> dict[str, Any] | None:
    """The open trial with its evidence and what the test would decide now, or ``None``."""
    trial = open_trial(sv.store)
    if trial is None:
        return None
    return _describe(trial, trial_evidence(sv, trial))


def _describe(trial: dict[str, Any], ev: TrialEvidence) -> dict[str, Any]:
    report = test_of(trial).report(ev)
    return {
        "trial_id": trial["id"],
        "candidate_version": trial["candidate_version"],
        "active_version": trial["active_version"],
        "status": trial["status"],
        "started_at": trial["started_at"],
        "share": trial["share"],
        "max_searches": trial["max_searches"],
        "alpha": trial["alpha"],
        "skipped_queries": trial.get("skipped_queries", 0),
        **report,
    }


def check_trial(sv: Services) -> dict[str, Any] | None:
    """Decide the open trial if the evidence suffices; returns what happened (``None``: no trial).

    The result's ``decision`` is ``continue``, ``promoted`` or ``rejected``;
    ``decided_here`` is true for the one caller, in any process, that took the decision.
    """
    trial = open_trial(sv.store)
    if trial is None:
        return None
    trial_id = int(trial["id"])
    if trial["status"] == PROMOTING:  # claimed by a process that is switching now, or died doing it
        try:
            _complete_promotion(sv, trial, wait_seconds=2.0)  # idempotent: the switch again, the trial closed once
        except TrainingInProgressError:  # the claimant is switching right now: it finishes the job
            logger.info("Trial %d: the promotion is being completed by another process.", trial_id)
        return {**_describe(trial, evidence(sv.store, trial_id)), "decision": PROMOTED, "decided_here": False}
    ev = trial_evidence(sv, trial)
    described = _describe(trial, ev)
    verdict = Verdict(described["decision"])
    if verdict is Verdict.CONTINUE:
        return {**described, "decided_here": False}
    outcome = {k: described[k] for k in OUTCOME_KEYS}
    reason = str(described["decision_reason"])
    if verdict is Verdict.PROMOTE:
        won = claim(sv.store, trial_id, to=PROMOTING, outcome=outcome, reason=reason)
        if won:
            logger.info("Trial %d: users preferred v%d (%s)", trial_id, trial["candidate_version"], reason)
            _complete_promotion(sv, {**trial, "outcome": outcome, "reason": reason})
        return {**described, "decision": PROMOTED, "decided_here": won}
    won = claim(sv.store, trial_id, to=REJECTED, outcome=outcome, reason=reason)
    if won:
        logger.info("Trial %d: v%d rejected (%s)", trial_id, trial["candidate_version"], reason)
        _retire_candidate(sv, trial, f"trial {trial_id}: {reason}", outcome)
    return {**described, "decision": REJECTED, "decided_here": won}


def stop_trial(sv: Services, reason: str) -> dict[str, Any]:
    """End the running trial now; the candidate is rejected and the active model stays."""
    trial = open_trial(sv.store)
    if trial is None or trial["status"] != RUNNING:
        raise TrialError("No trial is running; `embedloop models trial` shows the last one.")
    trial_id = int(trial["id"])
    ev = trial_evidence(sv, trial)
    described = _describe(trial, ev)
    outcome = {k: described[k] for k in OUTCOME_KEYS}
    if not claim(sv.store, trial_id, to=STOPPED, outcome=outcome, reason=reason):
        raise TrialError(f"Trial {trial_id} was decided by another process just now; see `embedloop models trial`.")
    _retire_candidate(sv, trial, f"trial {trial_id} stopped: {reason}", outcome)
    logger.info("Trial %d stopped: %s", trial_id, reason)
    return {**described, "status": STOPPED, "decision": REJECTED, "decision_reason": reason}


def _complete_promotion(sv: Services, trial: dict[str, Any], wait_seconds: float = 30.0) -> None:
    """Switch to the trial's candidate (idempotent), then close the trial and its run."""
    version = int(trial["candidate_version"])
    state = sv.searcher.loaded_state
    if state is None:  # nothing is served in this process yet: move the pointer; the state loads on first use
        with switch_lock(sv.store, wait_seconds=wait_seconds):
            if sv.registry.active_version() != version:
                sv.registry.activate(version)
    elif state.version != version or sv.registry.active_version() != version:
        candidate = sv.searcher.candidate
        if candidate is None or candidate.version != version:
            encoder = sv.load_encoder(version)
            doc_generation = int(sv.registry.manifest(version).get("doc_generation", version))
            candidate = sv.searcher.build_state(version, encoder, doc_generation)
        with switch_lock(sv.store, wait_seconds=wait_seconds):
            sv.activate_state(candidate)
    sv.serve_candidate(None)
    if finish(sv.store, int(trial["id"]), frm=PROMOTING, to=PROMOTED):
        reason = f"trial {trial['id']}: {trial.get('reason') or 'users preferred the candidate'}"
        sv.registry.update(version, trial_outcome=trial.get("outcome"), reasons=[reason])
        if trial.get("run_id") is not None:
            update_run(sv.store, int(trial["run_id"]), status=PROMOTED, reasons=[reason], trial=trial.get("outcome"))


def _retire_candidate(sv: Services, trial: dict[str, Any], reason: str, outcome: dict[str, Any]) -> None:
    """Mark the candidate rejected and free its files; the active model is untouched."""
    version = int(trial["candidate_version"])
    sv.serve_candidate(None)
    manifest = sv.registry.manifest(version) if sv.registry.exists(version) else {}
    if manifest:
        sv.registry.update(version, status=VersionStatus.REJECTED, reasons=[reason], trial_outcome=outcome)
        shutil.rmtree(sv.registry.model_dir(version), ignore_errors=True)
        remove_exports(sv.registry, version)
        if int(manifest.get("doc_generation", version)) == version:
            shutil.rmtree(sv.searcher.index_dir(version), ignore_errors=True)
    if trial.get("run_id") is not None:
        update_run(sv.store, int(trial["run_id"]), status=REJECTED, reasons=[reason], trial=outcome)
