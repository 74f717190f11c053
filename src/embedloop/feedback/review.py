"""The review queue: which questions about relevance are worth a person's (or an agent's) answer.

Clicks are cheap and noisy; an explicit answer is expensive and trusted. The
queue looks at recent traffic, grouped by normalised query, and scores five
reasons to ask, each in [0, 1], and a random floor under them:

``tied_scores``
    The active model's top scores are nearly tied: ``1 - (s1 - s2) / TIE_MARGIN``
    (0 beyond the margin). Candidates: the results within the margin of the top.
``conflicting_clicks``
    Sessions of the same query selected different items:
    ``min(1, 2 * (1 - share of the sessions that picked the most picked item))``.
    Candidates: the selected items, most picked first.
``model_disagreement``
    Only when a second ranking is given (a trained candidate, a trial):
    ``0.5 * [top-1 differs] + 0.5 * (1 - overlap of the two top-5 lists)``.
    Candidates: both top results, then the items only one list has.
``no_selection``
    The query was searched and nothing was ever selected: ``1 - 0.5 ** searches``.
    Candidates: the active model's top results.
``click_uncertain``
    The click model (``feedback/click_model.py``, fitted on the same traffic)
    cannot tell whether a click was a relevant one: ``4 p (1 - p)`` for the
    selected item whose posterior relevance ``p`` is closest to 1/2 (1 at
    ``p = 1/2``, 0 when the model is sure either way).
    Candidates: the selected items, most uncertain first, then the top results.
``sample``
    A stable random draw: a hash of the normalised query, uniform in [0, 1).
    It is no reason of its own but a floor under the others: it makes any
    searched query a question about its active top results once the reasoned
    questions score below it (weight :data:`SAMPLE_WEIGHT`, never added to the
    other reasons). Answers to a random sample of the traffic are unbiased by
    any reason's own blind spots; late in a large budget they are worth more
    than the weakest reasoned questions (``docs/review.md``).

A question's priority is
``(best + 0.25 * rest) * (1 + 0.25 * ln(searches)) * (0.5 + 0.5 * chance)``:
``best`` is the largest weighted reason score (weights :data:`REASON_WEIGHTS`),
``rest`` the sum of the other weighted scores (``best + 0.25 * rest`` gives way to
the ``sample`` floor when that is larger), frequent queries count more, and
``chance`` is the click model's probability that the answer changes at least
one training label (:func:`label_change_chance`: a relevant candidate nobody's
click made a positive, or an irrelevant one a click did; an answer that only
confirms what the clicks said teaches least). Its ``reason`` is the reason
with the largest weighted score.

Each question offers up to :data:`MAX_CANDIDATES` items not yet judged for
that query, scored by the active model (at least :data:`MIN_CANDIDATES`).
A query is never asked twice under one model version: not while a question
about it is open, and not again after it was answered until the model changes
(and then only about items still unjudged). Open questions age out (see
:func:`stale_reason`) when the model or the catalog moves under them.
"""

from __future__ import annotations

import hashlib
import logging
import math
import weakref
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedloop.feedback import persistence as db
from embedloop.feedback.click_model import ClickModel, ListScorer, click_log, fit_click_model
from embedloop.models.encoder import encode_queries
from embedloop.store import FeedbackStore
from embedloop.training.examples import normalise_query
from embedloop.types import FeedbackSession

logger = logging.getLogger(__name__)

#: Weight of each reason in a question's priority (documented in docs/review.md).
REASON_WEIGHTS: dict[str, float] = {
    "tied_scores": 1.0,
    "conflicting_clicks": 0.9,
    "model_disagreement": 0.8,
    "no_selection": 0.6,
    "click_uncertain": 0.5,
}
#: Weight of the ``sample`` floor: a question drawn at random from the traffic is asked before a reasoned one
#: whose weighted score is below ``SAMPLE_WEIGHT`` times its draw.
SAMPLE_WEIGHT = 0.4
#: Reasons that depend on the model's scores; they expire at any change of the active version.
MODEL_REASONS = frozenset({"tied_scores", "model_disagreement"})
#: Score gap under which the top results count as tied (cosine similarity).
TIE_MARGIN = 0.05
#: Most and fewest candidates a question offers.
MAX_CANDIDATES, MIN_CANDIDATES = 5, 2
#: How deep the active (and the compared) ranking is read.
RANK_DEPTH = 10
#: How many of the newest searches the queue looks at.
MAX_SEARCHES = 5000
#: Questions with a lower priority are not asked.
MIN_PRIORITY = 0.05
#: Click-based questions expire after this many model versions.
MODEL_AGE = 2
#: Share of the catalog changed since a question was asked that makes it moot.
CATALOG_CHURN = 0.2

#: Most ``sample`` questions open at a time (a refresh adds the highest priorities): the queue stays small on busy logs.
MAX_SAMPLE_QUESTIONS = 100

#: ``ranker(queries, k)`` → for each query its top-``k`` ``(item_id, score)``, best first.
Ranker = Callable[[Sequence[str], int], list[list[tuple[str, float]]]]


def state_ranker(state: Any, batch_size: int = 64) -> Ranker:
    """A :data:`Ranker` over a serving state (the active model's, or a candidate's)."""

    def rank(queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        if not queries:
            return []
        vectors = encode_queries(state.encoder, list(queries), batch_size=batch_size)
        with state.lock:
            scores, keys = state.index.search(vectors, k)
            return [
                [
                    (state.items[int(key)][0], float(s))
                    for key, s in zip(row_k, row_s, strict=True)
                    if int(key) in state.items
                ]
                for row_k, row_s in zip(keys, scores, strict=True)
            ]

    return rank


def state_scorer(state: Any) -> Callable[[str, Sequence[str]], dict[str, float]]:
    """``score(query, item_ids)`` → the state's score of each indexed item for ``query``."""
    by_id = {item_id: key for key, (item_id, _text) in state.items.items()}

    def score(query: str, ids: Sequence[str]) -> dict[str, float]:
        keys = [(i, by_id[i]) for i in ids if i in by_id]
        if not keys:
            return {}
        vector = encode_queries(state.encoder, [query], batch_size=1)[0]
        with state.lock:
            matrix = state.index.vectors([k for _i, k in keys])
        values = matrix @ np.asarray(vector, dtype=np.float32)
        return {i: float(v) for (i, _k), v in zip(keys, values, strict=True)}

    return score


@dataclass
class QueryTraffic:
    """What the logs hold about one normalised query."""

    key: str
    query: str
    searches: int = 0
    with_selection: int = 0
    #: item -> number of sessions that selected it
    picks: Counter[str] = field(default_factory=Counter)
    selection_ranks: list[int] = field(default_factory=list)


def group_traffic(rows: Sequence[FeedbackSession]) -> dict[str, QueryTraffic]:
    """Searches (newest first, as :func:`persistence.recent_traffic` returns them) grouped by query."""
    out: dict[str, QueryTraffic] = {}
    for r in rows:
        key = normalise_query(r.query)
        t = out.setdefault(key, QueryTraffic(key, r.query))
        t.searches += 1
        picked = list(dict.fromkeys(r.selected_ids))
        if picked:
            t.with_selection += 1
            t.picks.update(picked)
            t.selection_ranks.extend(rank or 0 for _item, rank, _seq in r.selected)
    return out


def reason_scores(
    t: QueryTraffic,
    active: list[tuple[str, float]],
    other: list[tuple[str, float]] | None = None,
    clicks: ClickModel | None = None,
) -> dict[str, tuple[float, list[str]]]:
    """Each reason's score in [0, 1] for one query and the items it would ask about.

    ``clicks``: the click model fitted on the traffic; without it ``click_uncertain`` is not scored.
    """
    out: dict[str, tuple[float, list[str]]] = {}
    top = [i for i, _s in active]
    if len(active) >= 2:
        gap = active[0][1] - active[1][1]
        tied = max(0.0, 1.0 - gap / TIE_MARGIN)
        within = [i for i, s in active if active[0][1] - s <= TIE_MARGIN]
        out["tied_scores"] = (tied, within if len(within) >= 2 else top[:2])
    if t.with_selection >= 2 and len(t.picks) >= 2:
        share = t.picks.most_common(1)[0][1] / t.with_selection
        out["conflicting_clicks"] = (min(1.0, 2.0 * (1.0 - share)), [i for i, _n in t.picks.most_common()])
    if other is not None and active and other:
        mine, theirs = top[:5], [i for i, _s in other][:5]
        overlap = len(set(mine) & set(theirs)) / max(1, min(5, len(mine), len(theirs)))
        score = 0.5 * float(mine[0] != theirs[0]) + 0.5 * (1.0 - overlap)
        only = [i for i in mine + theirs if (i in mine) != (i in theirs)]
        out["model_disagreement"] = (score, list(dict.fromkeys([mine[0], theirs[0], *only])))
    if t.with_selection == 0:
        out["no_selection"] = (1.0 - 0.5**t.searches, top)
    elif clicks is not None:
        doubt = {}
        for item in t.picks:
            p = clicks.relevance(t.key, item)
            if p is not None:
                doubt[item] = 4.0 * p * (1.0 - p)
        if doubt:
            ordered = sorted(doubt, key=lambda i: (-doubt[i], i))
            out["click_uncertain"] = (max(doubt.values()), ordered + top)
    if top:
        out["sample"] = (sample_draw(t.key), top)
    return out


def sample_draw(key: str) -> float:
    """The ``sample`` score of normalised query ``key``: uniform in [0, 1), stable across refreshes and processes."""
    digest = hashlib.blake2b(f"review-sample:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def label_change_chance(
    key: str,
    candidates: Sequence[str],
    ranking: list[tuple[str, float]],
    clicks: ClickModel | None,
    picked: Collection[str] = (),
    positive_cut: float = 0.5,
) -> float:
    """P(the answer changes at least one training label of query ``key``) under the click model (1.0 without one).

    A candidate's relevance ``p`` is its posterior when the logs showed the pair, else the click model's
    prior for the rank the active model gives it (the prior of the deepest rank outside its top results).
    Training already treats a ``picked`` item with ``p >= positive_cut`` as a positive: the answer changes
    it if the item is irrelevant (``1 - p``). Any other candidate is no positive yet: the answer changes it
    if the item is relevant (``p``).
    """
    if clicks is None or not clicks.prior:
        return 1.0
    rank_of = {item: r for r, (item, _s) in enumerate(ranking, start=1)}
    unchanged = 1.0
    for item in candidates:
        p = clicks.relevance(key, item)
        if p is None:
            rank = min(rank_of.get(item, len(clicks.prior)), len(clicks.prior))
            p = clicks.prior[rank - 1]
        unchanged *= p if item in picked and p >= positive_cut else 1.0 - p
    return 1.0 - unchanged


def priority_of(scores: dict[str, tuple[float, list[str]]], searches: int) -> tuple[float, str | None]:
    """A question's priority and its main reason (see the module docstring)."""
    weighted = sorted(
        ((REASON_WEIGHTS[r] * s, r) for r, (s, _items) in scores.items() if s > 0 and r != "sample"), reverse=True
    )
    value, reason = 0.0, None
    if weighted:
        value, reason = weighted[0][0] + 0.25 * sum(w for w, _r in weighted[1:]), weighted[0][1]
    floor = SAMPLE_WEIGHT * scores["sample"][0] if "sample" in scores else 0.0
    if floor > value:
        value, reason = floor, "sample"
    if reason is None:
        return 0.0, None
    return value * (1.0 + 0.25 * math.log(max(1, searches))), reason


@dataclass
class Proposal:
    """A question the queue could ask."""

    query: str
    reason: str
    reasons: dict[str, float]
    priority: float
    candidates: list[str]


def propose(
    traffic: dict[str, QueryTraffic],
    active: dict[str, list[tuple[str, float]]],
    other: dict[str, list[tuple[str, float]]] | None,
    judged: dict[str, set[str]],
    relevant: dict[str, set[str]] | None = None,
    clicks: ClickModel | None = None,
    positive_cut: float = 0.5,
    max_samples: int = MAX_SAMPLE_QUESTIONS,
) -> list[Proposal]:
    """Questions for every query worth asking about, highest priority first.

    ``judged``: items already judged per normalised query (never asked again); a reason whose
    items are all judged is moot, and so is ``no_selection`` once a query has a ``relevant`` item.
    ``clicks``: the click model fitted on the traffic (``click_uncertain`` and the label-change chance);
    ``positive_cut``: the posterior from which training keeps a click as a positive (0 without a click model).
    ``max_samples``: most questions the ``sample`` floor decides (the highest priorities).
    """
    relevant = relevant or {}
    out = []
    for key, t in traffic.items():
        ranking = active.get(key, [])
        known = judged.get(key, set())
        scores = {
            r: (s, items)
            for r, (s, items) in reason_scores(
                t, ranking, other.get(key) if other is not None else None, clicks
            ).items()
            if any(i not in known for i in items) and not (r == "no_selection" and relevant.get(key))
        }
        priority, reason = priority_of(scores, t.searches)
        if reason is None or priority < MIN_PRIORITY:
            continue
        ordered = scores[reason][1] + [i for r, (_s, items) in scores.items() if r != reason for i in items]
        ordered += [i for i, _s in ranking]
        candidates = [i for i in dict.fromkeys(ordered) if i not in known][:MAX_CANDIDATES]
        if len(candidates) < MIN_CANDIDATES:
            continue
        priority *= 0.5 + 0.5 * label_change_chance(key, candidates, ranking, clicks, t.picks, positive_cut)
        out.append(
            Proposal(
                t.query,
                reason,
                {r: round(s, 4) for r, (s, _i) in scores.items() if r != "sample" or reason == "sample"},
                round(priority, 4),
                candidates,
            )
        )
    out.sort(key=lambda p: (-p.priority, p.query))
    samples = [id(p) for p in out if p.reason == "sample"]
    dropped = set(samples[max(0, max_samples) :])  # the lowest-priority sample questions beyond the cap
    return [p for p in out if id(p) not in dropped]


def stale_reason(
    question: dict[str, Any],
    *,
    active_version: int | None,
    changed_items: set[str],
    changed_share: float,
    judged: set[str],
) -> str | None:
    """Why an open question is moot now, or ``None``.

    * the active model changed, for a question asked because of the model's
      scores (``tied_scores``, ``model_disagreement``); after :data:`MODEL_AGE`
      versions for the click-based reasons;
    * a candidate was changed or deleted in the catalog since, or more than
      :data:`CATALOG_CHURN` of the catalog changed (new items may be the answer);
    * every candidate has since been judged (e.g. through ``record_judgment``).
    """
    asked = question["model_version"]
    if asked is not None and active_version is not None and asked != active_version:
        if question["reason"] in MODEL_REASONS:
            return f"the active model changed from version {asked} to {active_version}"
        if abs(active_version - asked) >= MODEL_AGE:
            return f"the active model moved {abs(active_version - asked)} versions since (from {asked})"
    ids = [c["item_id"] for c in question["candidates"]]
    touched = sorted(set(ids) & changed_items)
    if touched:
        return f"candidate(s) {touched[:5]} changed in the catalog"
    if changed_share > CATALOG_CHURN:
        return f"{changed_share:.0%} of the catalog changed since the question was asked"
    if ids and all(i in judged for i in ids):
        return "every candidate has been judged"
    return None


def expire_stale(store: FeedbackStore, active_version: int | None) -> int:
    """Close the open questions :func:`stale_reason` finds moot; returns how many."""
    open_now = db.questions(store, status=db.OPEN)
    if not open_now:
        return 0
    labels = db.current_labels(store)
    total = max(1, store.count_items())
    newest = store.catalog_revision()
    why: dict[str, str] = {}
    changes: dict[int, set[str]] = {}
    for q in open_now:
        revision = q["catalog_revision"]
        if revision not in changes:
            rows, _ = store.changes_since(revision) if revision < newest else ([], newest)
            changes[revision] = {r.id for r in rows}
        changed = changes[revision]
        reason = stale_reason(
            q,
            active_version=active_version,
            changed_items=changed,
            changed_share=len(changed) / total,
            judged=set(labels.get(q["query_key"], ("", {}))[1]),
        )
        if reason is not None:
            why[q["review_id"]] = reason
    closed = db.expire_questions(store, why)
    if closed:
        logger.info("Expired %d review question(s)", closed)
    return closed


def refresh_queue(
    store: FeedbackStore,
    active: Ranker,
    score: Callable[[str, Sequence[str]], dict[str, float]],
    *,
    active_version: int | None,
    compare_with: Ranker | None = None,
    max_searches: int = MAX_SEARCHES,
    list_scorer: ListScorer | None = None,
    positive_cut: float = 0.5,
) -> int:
    """Expire moot questions, then add new ones from recent traffic; returns how many were added.

    ``list_scorer`` gives the click model the active model's scores of the shown lists (as training
    does with ``click_model="pbm_scores"``); ``positive_cut``: training's ``click_min_relevance``
    (0 when training keeps every click).

    Nothing is recomputed when nothing it depends on changed since this process last refreshed
    (searches, selections, judgments, open questions, catalog revision, active version).
    """
    stamp = (*db.traffic_stamp(store), store.catalog_revision(), active_version)
    if compare_with is None and _LAST_REFRESH.get(store) == stamp:
        return 0
    added = _refresh(
        store,
        active,
        score,
        active_version=active_version,
        compare_with=compare_with,
        max_searches=max_searches,
        list_scorer=list_scorer,
        positive_cut=positive_cut,
    )
    _LAST_REFRESH[store] = (*db.traffic_stamp(store), store.catalog_revision(), active_version)
    return added


#: The state each store's queue was last refreshed at, in this process.
_LAST_REFRESH: weakref.WeakKeyDictionary[FeedbackStore, tuple[Any, ...]] = weakref.WeakKeyDictionary()


def _refresh(
    store: FeedbackStore,
    active: Ranker,
    score: Callable[[str, Sequence[str]], dict[str, float]],
    *,
    active_version: int | None,
    compare_with: Ranker | None,
    max_searches: int,
    list_scorer: ListScorer | None = None,
    positive_cut: float = 0.5,
) -> int:
    expire_stale(store, active_version)
    sessions = db.recent_traffic(store, max_searches)
    traffic = group_traffic(sessions)
    asked = db.questions(store)
    blocked = {
        q["query_key"]
        for q in asked
        if q["status"] == db.OPEN or (q["status"] == db.ANSWERED and q["model_version"] == active_version)
    }
    traffic = {k: t for k, t in traffic.items() if k not in blocked}
    if not traffic:
        return 0
    keys = list(traffic)
    queries = [traffic[k].query for k in keys]
    ranked = dict(zip(keys, active(queries, RANK_DEPTH), strict=True))
    other = dict(zip(keys, compare_with(queries, RANK_DEPTH), strict=True)) if compare_with is not None else None
    labels = db.current_labels(store)
    judged = {k: set(lab) for k, (_q, lab) in labels.items()}
    relevant = {k: {i for i, r in lab.items() if r} for k, (_q, lab) in labels.items()}
    clicks = fit_click_model(click_log(sessions, list_scorer))  # every search: the examination curve needs them all
    revision = store.catalog_revision()
    rows = []
    open_samples = sum(q["status"] == db.OPEN and q["reason"] == "sample" for q in asked)
    proposals = propose(
        traffic, ranked, other, judged, relevant, clicks, positive_cut, max_samples=MAX_SAMPLE_QUESTIONS - open_samples
    )
    for p in proposals:
        known = dict(ranked.get(normalise_query(p.query), []))
        missing = [i for i in p.candidates if i not in known]
        if missing:
            known.update(score(p.query, missing))
        texts = store.get_items(p.candidates)
        candidates = [
            {"item_id": i, "text": texts[i].text, "score": round(known.get(i, 0.0), 6)}
            for i in p.candidates
            if i in texts
        ]
        if len(candidates) < MIN_CANDIDATES:
            continue
        rows.append(
            {
                "query": p.query,
                "candidates": candidates,
                "reason": p.reason,
                "reasons": p.reasons,
                "priority": p.priority,
                "model_version": active_version,
                "catalog_revision": revision,
            }
        )
    db.add_questions(store, rows)
    logger.info("Review queue: %d new question(s) from %d queries", len(rows), len(traffic))
    return len(rows)


def public_question(q: dict[str, Any]) -> dict[str, Any]:
    """The shape ``review_queue`` returns: review_id, query, candidates, reason (+ reasons, priority, created_at)."""
    return {
        "review_id": q["review_id"],
        "query": q["query"],
        "candidates": q["candidates"],
        "reason": q["reason"],
        "reasons": q["reasons"],
        "priority": q["priority"],
        "created_at": q["created_at"],
    }


def open_queue(store: FeedbackStore, limit: int) -> list[dict[str, Any]]:
    """The open questions, most useful first."""
    return [public_question(q) for q in db.questions(store, status=db.OPEN)[:limit]]
