"""A stronger training signal from the same feedback (issue 11): denoised positives, safe negatives.

Two steps between "examples from sessions" and "train", each behind a ``Settings`` option:

* ``click_model="pbm"`` — a position-based click model (``embedloop.feedback.click_model``) fitted
  on every logged search estimates P(relevant | all clicks and non-clicks) per (query, item); a
  positive below ``click_min_relevance`` is dropped and the others carry the estimate in
  ``relevance`` (and scale ``weight``, which position-bias repeats read); ``"pbm_scores"`` gives the
  click model the active model's scores of every shown list (its relevance prior then reads how far
  an item stands out from its list, which is what tells a lone mis-click from a relevant click);
* ``safe_negatives=True`` — negatives the user may never have looked at (shown below the last
  selection) and mined ones must pass a margin check against the positive under the active
  model: ``score(q, neg) <= score(q, pos) - negative_relative_margin * |score(q, pos)|`` (the
  rule of sentence-transformers' ``mine_hard_negatives(relative_margin=...)``; the NV-Retriever
  paper's "TopK-PercPos" at 95 %). Skip-above negatives (examined and passed over) need no check.
  Missing negatives are mined again from the active index under the same margin.

``refine_examples`` runs both; the cycle calls it once (see ``training/cycle.py``, "issue 11").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from embedloop.feedback.click_model import ClickModel, click_log, fit_click_model
from embedloop.settings import Settings
from embedloop.training.examples import TrainingExample, normalise_query

logger = logging.getLogger(__name__)

#: The click model reads at most this many of the newest searches (memory and time stay bounded).
CLICK_LOG_LIMIT = 100_000

#: ``score(queries, item_ids_per_query)`` → the active model's similarity of each query to each of its items.
Scorer = Callable[[list[str], list[list[str]]], list[list[float]]]
#: ``mine(queries, n)`` → for each query, its top ``n`` ``(item_id, score)`` from the active index.
Miner = Callable[[list[str], int], list[list[tuple[str, float]]]]


def apply_click_model(
    examples: Sequence[TrainingExample], model: ClickModel, min_relevance: float
) -> tuple[list[TrainingExample], int]:
    """Keep feedback positives whose P(relevant) reaches ``min_relevance``; returns (kept, dropped).

    Examples that do not come from clicks (domain files, judgments) and pairs the model never saw
    are kept unchanged.
    """
    kept: list[TrainingExample] = []
    dropped = 0
    for ex in examples:
        p = model.relevance(ex.query, ex.positive) if ex.source == "feedback" else None
        if p is None:
            kept.append(ex)
            continue
        ex.relevance = p
        if p < min_relevance:
            dropped += 1
            continue
        ex.weight = ex.weight * p if ex.weight > 1 else ex.weight
        kept.append(ex)
    return kept, dropped


def passes_margin(positive: float, negative: float, relative_margin: float) -> bool:
    """True when ``negative`` is at least ``relative_margin`` × |positive| below ``positive``."""
    return negative <= positive - relative_margin * abs(positive)


def check_margins(
    examples: Sequence[TrainingExample],
    score: Scorer,
    *,
    relative_margin: float,
    per_example: int,
    guard: dict[str, set[str]],
    mine: Miner | None = None,
) -> dict[str, int]:
    """Keep only negatives that are trusted or pass the margin; top up from ``mine`` under the same rule.

    Candidates per example: its untrusted negatives (shown below the selections, mined), then its
    ``unverified`` ones. Returns counts: ``checked``, ``dropped``, ``mined``.
    """
    feedback = [ex for ex in examples if ex.positive_text is None and ex.positive]
    if not feedback:
        return {"checked": 0, "dropped": 0, "mined": 0}
    candidates = [
        [n for n in ex.negatives if n not in ex.trusted] + [n for n in ex.unverified if n not in ex.negatives]
        for ex in feedback
    ]
    scores = score(
        [ex.query for ex in feedback], [[ex.positive, *c] for ex, c in zip(feedback, candidates, strict=True)]
    )
    checked = dropped = topped = 0
    short: list[int] = []
    positives: list[float] = []
    for j, (ex, cand, row) in enumerate(zip(feedback, candidates, scores, strict=True)):
        pos = row[0]
        positives.append(pos)
        keep = [n for n in ex.negatives if n in ex.trusted]
        for n, sc in zip(cand, row[1:], strict=True):
            checked += 1
            if passes_margin(pos, sc, relative_margin):
                keep.append(n)
            else:
                dropped += 1
        ex.negatives = keep
        ex.unverified = []
        if len(keep) < per_example:
            short.append(j)
    if mine is not None and short and per_example > 0:
        ranked = mine([feedback[j].query for j in short], per_example + 30)
        for j, found in zip(short, ranked, strict=True):
            ex = feedback[j]
            never = guard.get(normalise_query(ex.query), set())
            for item, sc in found:
                if len(ex.negatives) >= per_example:
                    break
                if item == ex.positive or item in never or item in ex.negatives:
                    continue
                if passes_margin(positives[j], sc, relative_margin):
                    ex.negatives.append(item)
                    topped += 1
    return {"checked": checked, "dropped": dropped, "mined": topped}


def index_scorer(state: Any, batch_size: int) -> tuple[Scorer, Miner]:
    """A scorer and a miner over a serving state's encoder and index (no catalog re-encoding)."""
    from embedloop.models.encoder import encode_queries

    key_of = {item_id: key for key, (item_id, _text) in state.items.items()}

    def score(queries: list[str], ids: list[list[str]]) -> list[list[float]]:
        qv = encode_queries(state.encoder, queries, batch_size=batch_size)
        out: list[list[float]] = []
        with state.lock:
            for vec, row in zip(qv, ids, strict=True):
                keys = [key_of[i] for i in row if i in key_of]
                found = dict(
                    zip([i for i in row if i in key_of], state.index.vectors(keys) if keys else [], strict=True)
                )
                # an item no longer in the index scores +inf: never admitted as a negative, kept as a positive
                out.append([float(np.dot(found[i], vec)) if i in found else float("inf") for i in row])
        return out

    def mine(queries: list[str], n: int) -> list[list[tuple[str, float]]]:
        qv = encode_queries(state.encoder, queries, batch_size=batch_size)
        with state.lock:
            scores, keys = state.index.search(qv, n)
            return [
                [(state.items[int(k)][0], float(sc)) for sc, k in zip(srow, krow, strict=True) if int(k) in state.items]
                for srow, krow in zip(scores, keys, strict=True)
            ]

    return score, mine


def refine_examples(
    examples: list[TrainingExample],
    *,
    settings: Settings,
    store: Any,
    state: Any,
    guard: dict[str, set[str]],
) -> tuple[list[TrainingExample], dict[str, Any]]:
    """The cycle's hook: click-model filtering and safe negatives, per ``settings``; returns (examples, info)."""
    info: dict[str, Any] = {}
    needs_scores = settings.click_model == "pbm_scores" or settings.safe_negatives
    score, mine = index_scorer(state, settings.encode_batch_size) if needs_scores else (None, None)
    if settings.click_model != "off":
        scored = score if settings.click_model == "pbm_scores" else None
        model = fit_click_model(click_log(store.search_log(limit=CLICK_LOG_LIMIT), scored))
        examples, dropped = apply_click_model(examples, model, settings.click_min_relevance)
        info["click_model"] = {**model.summary(), "positives_dropped": dropped}
        logger.info("Click model dropped %d of %d positives", dropped, dropped + len(examples))
    if settings.safe_negatives:
        assert score is not None
        info["safe_negatives"] = check_margins(
            examples,
            score,
            relative_margin=settings.negative_relative_margin,
            per_example=settings.hard_negatives,
            guard=guard,
            mine=mine,
        )
        logger.info("Safe negatives: %s", info["safe_negatives"])
    return examples, info
