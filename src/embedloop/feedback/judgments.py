"""Explicit judgments as training labels and as a clean held-out set.

Judgments are trusted labels: a judged-relevant item is a positive of its own
(weight :data:`JUDGMENT_WEIGHT`, ``source="judgment"``) and never a negative
for that query; a judged-irrelevant item is never a positive for that query,
whatever the clicks say, and becomes a negative of every example of the query.

When enough queries are judged, a stable share of them
(:data:`HOLDOUT_FRACTION`, chosen by a hash of the normalised query so that the
choice does not move as judgments accumulate) is held out: those judgments and
the clicks of those queries are kept out of training, and
:func:`judgment_holdout` gives the pre-check/gate a set of labels that the
active model did not choose (clicks only ever land on what it showed).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from embedloop.evaluation import RetrievalEvaluator, TripletAccuracyEvaluator
from embedloop.feedback.persistence import current_labels
from embedloop.store import FeedbackStore
from embedloop.training.examples import TrainingExample, normalise_query
from embedloop.types import FeedbackSession

logger = logging.getLogger(__name__)

#: Repeat factor of a judged positive in training (a click example weighs 1).
JUDGMENT_WEIGHT = 2.0
#: Share of judged queries held out for evaluation once there are enough.
HOLDOUT_FRACTION = 0.3
#: Fewest held-out judged queries for a held-out set to exist at all.
MIN_HOLDOUT_QUERIES = 10


def in_holdout(key: str, fraction: float = HOLDOUT_FRACTION) -> bool:
    """Whether normalised query ``key`` belongs to the judgment held-out share (stable hash)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % 10_000 < fraction * 10_000


@dataclass
class JudgmentHoldout:
    """Held-out judgments: per query the relevant and the irrelevant item ids."""

    queries: dict[str, str] = field(default_factory=dict)  # key -> query text
    relevant: dict[str, set[str]] = field(default_factory=dict)
    irrelevant: dict[str, set[str]] = field(default_factory=dict)

    @property
    def keys(self) -> set[str]:
        """Normalised queries held out."""
        return set(self.queries)

    def triplets(self) -> list[tuple[str, str, str]]:
        """``(query, relevant id, irrelevant id)`` for every judged pair of one query."""
        return [
            (self.queries[k], pos, neg)
            for k in sorted(self.queries)
            for pos in sorted(self.relevant.get(k, ()))
            for neg in sorted(self.irrelevant.get(k, ()))
        ]

    def qrels(self) -> dict[str, set[str]]:
        """``{query text: relevant ids}`` for a retrieval evaluator."""
        return {self.queries[k]: set(r) for k, r in self.relevant.items() if r}


def judgment_holdout(
    store: FeedbackStore, *, fraction: float = HOLDOUT_FRACTION, min_queries: int = MIN_HOLDOUT_QUERIES
) -> JudgmentHoldout | None:
    """The held-out judgments, or ``None`` while fewer than ``min_queries`` judged queries fall in it.

    Only queries with at least one relevant item count. The lead's gate reads
    ``triplets()`` (accuracy: relevant above irrelevant) and ``qrels()``
    (retrieval over the catalog) before the click-based held-out set.
    """
    out = JudgmentHoldout()
    for key, (query, labels) in current_labels(store).items():
        if not in_holdout(key, fraction) or not any(labels.values()):
            continue
        out.queries[key] = query
        out.relevant[key] = {i for i, rel in labels.items() if rel}
        out.irrelevant[key] = {i for i, rel in labels.items() if not rel}
    if len(out.queries) < min_queries:
        return None
    return out


def judgment_evaluators(
    holdout: JudgmentHoldout,
    texts: dict[str, str],
    corpus_ids: list[str],
    corpus_texts: list[str],
    batch_size: int = 64,
) -> tuple[TripletAccuracyEvaluator, RetrievalEvaluator]:
    """The gate's evaluators over held-out judgments (metric names as for held-out clicks).

    ``texts``: item id -> text (the catalog; judged items missing from it are skipped).
    """
    triplets = [(q, texts[p], texts[n]) for q, p, n in holdout.triplets() if p in texts and n in texts]
    qrels = {q: {i for i in ids if i in texts} for q, ids in holdout.qrels().items()}
    return (
        TripletAccuracyEvaluator(triplets, batch_size=batch_size, corpus_texts=corpus_texts),
        RetrievalEvaluator({q: r for q, r in qrels.items() if r}, corpus_ids, corpus_texts, batch_size=batch_size),
    )


def judgment_examples(store: FeedbackStore, *, exclude: set[str] | None = None) -> list[TrainingExample]:
    """One example per judged-relevant (query, item): the query's judged-irrelevant items as negatives.

    ``exclude``: normalised queries to leave out (the held-out ones).
    """
    out = []
    for key, (query, labels) in current_labels(store).items():
        if exclude and key in exclude:
            continue
        negatives = sorted(i for i, rel in labels.items() if not rel)
        for item in sorted(i for i, rel in labels.items() if rel):
            out.append(TrainingExample(query, item, list(negatives), JUDGMENT_WEIGHT, None, "judgment"))
    return out


def overrule_sessions(store: FeedbackStore, sessions: Sequence[FeedbackSession]) -> list[FeedbackSession]:
    """Feedback sessions without the selections a judgment calls irrelevant (copies; others unchanged).

    For the held-out click set: a judged-irrelevant item selected for a query must not count as a
    right answer for it in the gate either. Sessions left with no selection are dropped.
    """
    labels = current_labels(store)
    out = []
    for s in sessions:
        bad = {i for i, rel in labels.get(normalise_query(s.query), ("", {}))[1].items() if not rel}
        if not bad:
            out.append(s)
            continue
        kept = [sel for sel in s.selected if sel[0] not in bad]
        if kept:
            out.append(replace(s, selected=kept))
    return out


def merge_judgments(
    store: FeedbackStore,
    examples: Sequence[TrainingExample],
    guard: dict[str, set[str]],
    *,
    holdout: JudgmentHoldout | None = None,
) -> list[TrainingExample]:
    """Click examples corrected by the judgments, plus the judgment examples.

    * a click example whose positive was judged irrelevant for its query is dropped;
    * judged-relevant items are removed from every negative list of their query and added
      to ``guard`` (so mined and padded negatives skip them too);
    * judged-irrelevant items are removed from ``guard`` and put first among the negatives;
    * with ``holdout``, held-out queries lose their click examples too (a clean held-out set).

    ``guard`` is updated in place (``selected_by_query``'s false-negative guard).
    """
    labels = current_labels(store)
    held = holdout.keys if holdout is not None else set()
    relevant = {k: {i for i, r in lab.items() if r} for k, (_q, lab) in labels.items()}
    irrelevant = {k: {i for i, r in lab.items() if not r} for k, (_q, lab) in labels.items()}
    for key, ids in relevant.items():
        guard.setdefault(key, set()).update(ids)
    for key, ids in irrelevant.items():
        if key in guard:
            guard[key] -= ids
    merged: dict[tuple[str, str], TrainingExample] = {}
    dropped = 0
    for ex in examples:
        key = normalise_query(ex.query)
        if key in held or ex.positive in irrelevant.get(key, ()):
            dropped += 1
            continue
        bad = sorted(irrelevant.get(key, set()) - {ex.positive})
        ex.negatives = bad + [n for n in ex.negatives if n not in relevant.get(key, ()) and n not in bad]
        merged[(key, ex.positive)] = ex
    added = 0
    for ex in judgment_examples(store, exclude=held):
        pair = (normalise_query(ex.query), ex.positive)
        if pair in merged:
            old = merged[pair]
            old.weight = max(old.weight, ex.weight)
            old.source = "judgment"
            old.negatives = ex.negatives + [n for n in old.negatives if n not in ex.negatives]
        else:
            merged[pair] = ex
            added += 1
    if labels:
        logger.info(
            "Judgments: %d examples added, %d click examples overruled or held out, %d judged queries held out",
            added,
            dropped,
            len(held),
        )
    return list(merged.values())
