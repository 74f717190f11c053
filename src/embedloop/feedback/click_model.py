"""A position-based click model with noisy clicks, fitted by EM: what the logs say is relevant.

Users look at rank 1 almost always and at rank 10 rarely, and even an examined
result is clicked by mistake now and then. A raw click is therefore weak
evidence; fifty sessions of the same query are strong evidence, if they are
pooled. The model (a position-based model, Richardson et al. 2007 / Chuklin et
al. 2015, "Click Models for Web Search", with a two-class relevance per
(query, item) as in Wang et al. 2018, "Position Bias Estimation for Unbiased
Learning to Rank in Personal Search"):

* a shown result at rank ``r`` is examined with probability ``theta[r]``
  (``theta[1] = 1`` fixes the scale);
* each (normalised query, item) pair is relevant (``R = 1``) or not, with a
  prior that depends on the best rank the item was shown at, ``prior[r]``
  (the ranker puts relevant items high more often than low) — or, when the
  impressions carry the ranking model's scores, on how far the item's score
  stands out from the rest of its list: ``prior = sigmoid(a + b * z)``, with
  ``z`` the item's score standardised within the shown list (the
  "regression EM" of Wang et al. 2018, with one feature);
* an examined result is clicked with ``eps1`` if relevant and ``eps0`` if not
  (``eps0`` is the mis-click rate).

EM alternates the posterior ``P(R = 1 | every impression of the pair)`` and
the parameters (with small Beta pseudo-counts so that rare ranks and single
sessions do not produce 0/1 estimates). Repeated queries pool: a result shown
fifty times at rank 1 and clicked five times gets a low posterior, however
many clicks it has. When the logs never show an item at two different ranks
the examination curve is only weakly identified (through ``eps1``/``eps0``
being shared by every rank); the EM then stays near its ``1 / rank`` start.
Exploration (``embedloop.search.exploration``) or rank changes between model
versions give it the variation it needs.

The score feature is what makes a single session informative. Per rank, the
examination and the relevance prior cannot be told apart (only their product
is seen), so with a prior by rank the fit stays near its pseudo-counts and a
lone click keeps a high posterior wherever it lands — also a mis-click on
rank 7. Within one rank, though, results whose score stands out are clicked
more often than the rest, and that contrast identifies ``a`` and ``b``
(the examination of the rank cancels). A lone click on a result the model
scores like the bulk of its list then gets a low posterior; one on a result
that stands out, a high one; repeated sessions of a query outweigh the prior
as before. Measured in ``docs/benchmarks-quality.md`` ("Stop 23").

Use: ``model = fit_click_model(click_log(sessions))`` (or
``click_log(sessions, scorer)`` for the score feature);
``model.relevance(query, item)``; ``model.examination[r - 1]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedloop.types import FeedbackSession

logger = logging.getLogger(__name__)

#: Ranks deeper than this share one examination parameter.
MAX_RANK = 50
#: At most this many distinct queries (the most recent) are scored for the score feature; older ones get z = 0.
SCORED_QUERY_LIMIT = 20_000

#: ``scorer(queries, item_ids_per_query)`` → the ranking model's similarity of each query to each of its items
#: (``inf`` or ``nan`` for an item it cannot score).
ListScorer = Callable[[list[str], list[list[str]]], list[list[float]]]


def normalise_query(query: str) -> str:
    """The key under which feedback for a query is pooled (case and spacing ignored).

    The same rule as ``embedloop.training.examples.normalise_query`` (kept here so this module
    depends on nothing in ``training``).
    """
    return " ".join(query.lower().split())


@dataclass(frozen=True)
class Impression:
    """One shown result: the (normalised) query, the item, its 1-based rank and whether it was clicked."""

    query: str
    item: str
    rank: int
    clicked: bool
    #: The item's score standardised within its shown list (a z-score), when a scorer was given.
    score: float | None = None


def click_log(sessions: Iterable[FeedbackSession], scorer: ListScorer | None = None) -> list[Impression]:
    """Impressions from sessions (``query``, ``shown`` in rank order, ``selected``).

    Takes ``Store.feedback_sessions()`` and ``Store.search_log()``; sessions without selections are
    impressions without clicks (useful evidence when a query repeats). With ``scorer``, each impression
    also carries its item's score standardised within the shown list (the click model's score feature);
    every distinct query is scored once (at most :data:`SCORED_QUERY_LIMIT`, the most recent).
    """
    rows = list(sessions)
    z_of = _list_z_scores(rows, scorer) if scorer is not None else {}
    out: list[Impression] = []
    for j, s in enumerate(rows):
        key = normalise_query(s.query)
        picked = set(s.selected_ids)
        z = z_of.get(j)
        for rank, item in enumerate(s.shown, start=1):
            out.append(Impression(key, item, rank, item in picked, None if z is None else z[rank - 1]))
    return out


def _list_z_scores(rows: Sequence[FeedbackSession], scorer: ListScorer) -> dict[int, list[float]]:
    """Per session index: each shown item's score as a z-score within its list (0 where it cannot be scored)."""
    items: dict[str, dict[str, None]] = {}
    for s in reversed(rows):  # newest first, so the limit keeps the most recent queries
        key = normalise_query(s.query)
        if key not in items and len(items) >= SCORED_QUERY_LIMIT:
            continue
        items.setdefault(key, {}).update(dict.fromkeys(s.shown))
    queries = list(items)
    scored = scorer(queries, [list(items[q]) for q in queries]) if queries else []
    score_of = {q: dict(zip(items[q], row, strict=True)) for q, row in zip(queries, scored, strict=True)}
    out: dict[int, list[float]] = {}
    for j, s in enumerate(rows):
        known = score_of.get(normalise_query(s.query))
        if known is None or len(s.shown) < 2:
            continue
        values = np.array([known.get(i, np.nan) for i in s.shown], dtype=float)
        values[~np.isfinite(values)] = np.nan
        ok = ~np.isnan(values)
        if ok.sum() < 2:
            continue
        spread = float(np.std(values[ok]))
        z = (values - float(np.mean(values[ok]))) / max(spread, 1e-6)
        out[j] = [float(x) if np.isfinite(x) else 0.0 for x in z]
    return out


@dataclass
class ClickModel:
    """Fitted parameters and the per-(query, item) posterior of relevance."""

    #: ``examination[r - 1]``: probability that rank ``r`` is looked at (rank 1 = 1.0).
    examination: list[float]
    #: ``prior[r - 1]``: probability that an item whose best rank was ``r`` is relevant.
    prior: list[float]
    #: P(click | examined, relevant) and P(click | examined, not relevant).
    eps1: float
    eps0: float
    #: P(relevant | all impressions) per (normalised query, item).
    posterior: dict[tuple[str, str], float] = field(default_factory=dict)
    iterations: int = 0
    impressions: int = 0
    #: ``(a, b)`` of the score-feature prior ``sigmoid(a + b * z)``; None when the impressions had no scores.
    score_prior: tuple[float, float] | None = None

    def examination_at(self, rank: int) -> float:
        """Examination probability of a 1-based rank (deep ranks share the last value)."""
        if not self.examination:
            return 1.0
        return self.examination[min(max(rank, 1), len(self.examination)) - 1]

    def relevance(self, query: str, item: str) -> float | None:
        """P(item is relevant for query | the logs), or None when the pair was never shown."""
        return self.posterior.get((normalise_query(query), item))

    def summary(self) -> dict[str, Any]:
        """Plain numbers for logs and manifests."""
        return {
            "examination": [round(x, 4) for x in self.examination[:10]],
            "prior": [round(x, 4) for x in self.prior[:10]],
            "eps1": round(self.eps1, 4),
            "eps0": round(self.eps0, 4),
            "pairs": len(self.posterior),
            "impressions": self.impressions,
            "iterations": self.iterations,
            "score_prior": None if self.score_prior is None else [round(x, 4) for x in self.score_prior],
        }


def fit_click_model(
    impressions: Sequence[Impression],
    *,
    max_rank: int | None = None,
    iterations: int = 500,
    tolerance: float = 1e-4,
    pseudo_count: float = 1.0,
    click_prior_strength: float = 20.0,
) -> ClickModel:
    """Fit the noisy position-based model to ``impressions`` by EM.

    ``pseudo_count`` is the weight of the Beta priors (toward ``1 / rank`` for examination, 0.5
    for the relevance prior, 0.8 / 0.1 for ``eps1`` / ``eps0``). Stops after ``iterations`` or
    when no parameter moves more than ``tolerance``.
    """
    if not impressions:
        return ClickModel(examination=[], prior=[], eps1=0.8, eps0=0.1)
    depth = min(max_rank or MAX_RANK, max(i.rank for i in impressions))
    index: dict[tuple[str, str], int] = {}
    pair = np.fromiter((index.setdefault((i.query, i.item), len(index)) for i in impressions), dtype=np.int64)
    rank = np.fromiter((min(i.rank, depth) - 1 for i in impressions), dtype=np.int64)
    click = np.fromiter((i.clicked for i in impressions), dtype=bool)
    n_pairs = len(index)
    best = np.full(n_pairs, depth - 1, dtype=np.int64)
    np.minimum.at(best, pair, rank)
    feature = _pair_feature(impressions, pair, n_pairs)
    init_curve = 1.0 / np.arange(1, depth + 1)
    theta = init_curve.copy()
    prior = 0.5 / np.sqrt(np.arange(1, depth + 1))
    coef = np.array([-1.0, 1.0])  # (a, b) of the score-feature prior: start where standing out means relevant
    eps1, eps0 = 0.8, 0.1
    shown_at = np.bincount(rank, minlength=depth).astype(float)
    pairs_at = np.bincount(best, minlength=depth).astype(float)
    post = np.full(n_pairs, 0.5)
    done = 0
    for done in range(1, iterations + 1):  # noqa: B007 (the count is reported)
        # E-step: posterior relevance of every pair, from the sum of its impressions' log-likelihoods
        pair_prior = prior[best] if feature is None else _sigmoid(coef[0] + coef[1] * feature)
        p1, p0 = theta[rank] * eps1, theta[rank] * eps0
        ll1 = np.where(click, np.log(np.clip(p1, 1e-12, 1)), np.log(np.clip(1 - p1, 1e-12, 1)))
        ll0 = np.where(click, np.log(np.clip(p0, 1e-12, 1)), np.log(np.clip(1 - p0, 1e-12, 1)))
        l1 = np.log(np.clip(pair_prior, 1e-12, 1)) + np.bincount(pair, ll1, minlength=n_pairs)
        l0 = np.log(np.clip(1 - pair_prior, 1e-12, 1)) + np.bincount(pair, ll0, minlength=n_pairs)
        post = 1.0 / (1.0 + np.exp(np.clip(l0 - l1, -700, 700)))
        # M-step, with Beta pseudo-counts; P(examined | not clicked, R) for the non-clicks
        w1 = post[pair]
        w0 = 1.0 - w1
        e1 = np.where(click, 1.0, theta[rank] * (1 - eps1) / np.maximum(1e-12, 1 - theta[rank] * eps1))
        e0 = np.where(click, 1.0, theta[rank] * (1 - eps0) / np.maximum(1e-12, 1 - theta[rank] * eps0))
        examined = np.bincount(rank, w1 * e1 + w0 * e0, minlength=depth)
        new_theta = np.minimum(1.0, (examined + pseudo_count * init_curve) / (shown_at + pseudo_count))
        new_theta[0] = 1.0
        new_eps1 = float((np.sum(w1 * click) + click_prior_strength * 0.8) / (np.sum(w1 * e1) + click_prior_strength))
        new_eps0 = float((np.sum(w0 * click) + click_prior_strength * 0.1) / (np.sum(w0 * e0) + click_prior_strength))
        if feature is None:
            new_prior = (np.bincount(best, post, minlength=depth) + pseudo_count * 0.5) / (pairs_at + pseudo_count)
            new_coef = coef
        else:
            new_prior, new_coef = prior, _logistic_step(coef, feature, post, ridge=pseudo_count)
        shift = max(
            float(np.max(np.abs(new_theta - theta))),
            float(np.max(np.abs(new_prior - prior))),
            float(np.max(np.abs(new_coef - coef))),
            abs(new_eps1 - eps1),
            abs(new_eps0 - eps0),
        )
        theta, prior, coef, eps1, eps0 = new_theta, new_prior, new_coef, min(new_eps1, 0.999), max(new_eps0, 1e-4)
        if eps0 >= eps1:  # keep the labels apart: "relevant" is the class clicked more often
            eps0 = eps1 * 0.5
        if shift < tolerance:
            break
    if feature is not None:  # the prior by rank is reported (and read by the review queue) as the fitted mean
        fitted = _sigmoid(coef[0] + coef[1] * feature)
        prior = (np.bincount(best, fitted, minlength=depth) + pseudo_count * 0.5) / (pairs_at + pseudo_count)
    model = ClickModel(
        examination=[float(x) for x in theta],
        prior=[float(x) for x in prior],
        eps1=eps1,
        eps0=eps0,
        posterior={k: float(post[j]) for k, j in index.items()},
        iterations=done,
        impressions=len(impressions),
        score_prior=None if feature is None else (float(coef[0]), float(coef[1])),
    )
    logger.info("Click model: %s", model.summary())
    return model


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -500, 500)))


def _pair_feature(impressions: Sequence[Impression], pair: np.ndarray, n_pairs: int) -> np.ndarray | None:
    """Each pair's mean score feature over its scored impressions (0 for a pair never scored); None if none was."""
    scored = np.fromiter((i.score is not None for i in impressions), dtype=bool, count=len(impressions))
    if not scored.any():
        return None
    values = np.fromiter((i.score or 0.0 for i in impressions), dtype=float, count=len(impressions))
    total = np.bincount(pair, np.where(scored, values, 0.0), minlength=n_pairs)
    count = np.bincount(pair, scored.astype(float), minlength=n_pairs)
    return np.divide(total, count, out=np.zeros(n_pairs), where=count > 0)


def _logistic_step(coef: np.ndarray, x: np.ndarray, target: np.ndarray, *, ridge: float) -> np.ndarray:
    """One Newton step of a ridge-penalised logistic regression of the soft ``target`` on ``(1, x)``.

    One step per EM iteration is a generalised EM: the likelihood still rises at every iteration.
    """
    p = _sigmoid(coef[0] + coef[1] * x)
    w = p * (1.0 - p)
    grad = np.array([np.sum(target - p), np.sum((target - p) * x)]) - ridge * coef
    hess = np.array([[np.sum(w), np.sum(w * x)], [np.sum(w * x), np.sum(w * x * x)]]) + ridge * np.eye(2)
    return coef + np.linalg.solve(hess, grad)
