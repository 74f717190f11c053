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
  (the ranker puts relevant items high more often than low);
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

Use: ``model = fit_click_model(click_log(sessions))``;
``model.relevance(query, item)``; ``model.examination[r - 1]``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedloop.types import FeedbackSession

logger = logging.getLogger(__name__)

#: Ranks deeper than this share one examination parameter.
MAX_RANK = 50


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


def click_log(sessions: Iterable[FeedbackSession]) -> list[Impression]:
    """Impressions from sessions (``query``, ``shown`` in rank order, ``selected``).

    Takes ``Store.feedback_sessions()`` and ``Store.search_log()``; sessions without selections are
    impressions without clicks (useful evidence when a query repeats).
    """
    out: list[Impression] = []
    for s in sessions:
        key = normalise_query(s.query)
        picked = set(s.selected_ids)
        for rank, item in enumerate(s.shown, start=1):
            out.append(Impression(key, item, rank, item in picked))
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
    init_curve = 1.0 / np.arange(1, depth + 1)
    theta = init_curve.copy()
    prior = 0.5 / np.sqrt(np.arange(1, depth + 1))
    eps1, eps0 = 0.8, 0.1
    shown_at = np.bincount(rank, minlength=depth).astype(float)
    pairs_at = np.bincount(best, minlength=depth).astype(float)
    post = np.full(n_pairs, 0.5)
    done = 0
    for done in range(1, iterations + 1):  # noqa: B007 (the count is reported)
        # E-step: posterior relevance of every pair, from the sum of its impressions' log-likelihoods
        p1, p0 = theta[rank] * eps1, theta[rank] * eps0
        ll1 = np.where(click, np.log(np.clip(p1, 1e-12, 1)), np.log(np.clip(1 - p1, 1e-12, 1)))
        ll0 = np.where(click, np.log(np.clip(p0, 1e-12, 1)), np.log(np.clip(1 - p0, 1e-12, 1)))
        l1 = np.log(np.clip(prior[best], 1e-12, 1)) + np.bincount(pair, ll1, minlength=n_pairs)
        l0 = np.log(np.clip(1 - prior[best], 1e-12, 1)) + np.bincount(pair, ll0, minlength=n_pairs)
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
        new_prior = (np.bincount(best, post, minlength=depth) + pseudo_count * 0.5) / (pairs_at + pseudo_count)
        shift = max(
            float(np.max(np.abs(new_theta - theta))),
            float(np.max(np.abs(new_prior - prior))),
            abs(new_eps1 - eps1),
            abs(new_eps0 - eps0),
        )
        theta, prior, eps1, eps0 = new_theta, new_prior, min(new_eps1, 0.999), max(new_eps0, 1e-4)
        if eps0 >= eps1:  # keep the labels apart: "relevant" is the class clicked more often
            eps0 = eps1 * 0.5
        if shift < tolerance:
            break
    model = ClickModel(
        examination=[float(x) for x in theta],
        prior=[float(x) for x in prior],
        eps1=eps1,
        eps0=eps0,
        posterior={k: float(post[j]) for k, j in index.items()},
        iterations=done,
        impressions=len(impressions),
    )
    logger.info("Click model: %s", model.summary())
    return model
