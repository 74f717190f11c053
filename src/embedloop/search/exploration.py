"""Exploration in the shown list, with the propensity of every shown item (a pure function).

Feedback only ever comes from the active model's top ``k``: a relevant result at rank 30 is never
clicked, and a click at rank 1 over rank 2 says as much about position as about relevance. Two
randomisations, each applied to a search with probability ``rate`` (off by default):

* **FairPairs** (Radlinski & Joachims, 2006, "Minimally Invasive Randomization for Collecting
  Unbiased Preferences from Clickthrough Logs"): the top ``k`` is cut into adjacent pairs — (1,2),
  (3,4), … or, with probability 1/2, (2,3), (4,5), … — and each pair is swapped with probability
  1/2. Within a pair both orders are equally likely, so a click on the lower item of a pair is an
  unbiased preference for it;
* **insert**: one result drawn uniformly from ranks ``insert_from``–``insert_to`` (11–50) is put
  into a uniformly random slot of the top ``k``; the results from that slot down move one place
  and the ``k``-th drops out. It gives positives outside the model's top ``k``.

``"both"`` applies FairPairs, then the insertion (each with probability ``rate``, independently).

Every shown item comes with its **propensity**: the probability, over the randomisation, that the
item is shown at exactly the position it is shown at, given the ranker's list. It is computed over
the whole randomisation, including the chance that the search was not randomised at all, so it
depends only on (rank in the ranker's list, shown position) and is below 1 whenever exploration is
on. Log it with the impression (``impressions.propensity``) and weight by ``1 / propensity`` for
unbiased estimates.

Serving calls ``explore(top_n, k, mode=settings.exploration, rate=settings.exploration_rate,
rng=...)`` on the ranked top ``max(k, insert_to)`` and shows ``result.shown``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

#: The allowed modes (``Settings.exploration``).
MODES = ("off", "fairpairs", "insert", "both")


@dataclass(frozen=True)
class Exploration(Generic[T]):
    """What to show: items in display order, each one's propensity and its rank in the ranker's list."""

    shown: list[T]
    propensity: list[float]
    original_rank: list[int]
    #: Which randomisations were applied to this search ("fairpairs", "insert").
    applied: tuple[str, ...] = ()


def _fairpairs_marginal(rank: int, k: int) -> dict[int, float]:
    """P(FairPairs puts the item of 1-based ``rank`` at each position), given it is applied."""
    out: dict[int, float] = {}
    for offset in (0, 1):
        # with offset 0 pairs start at 1 (1-2, 3-4, ...); with offset 1 at 2 (2-3, 4-5, ...)
        if rank <= offset:
            partner = None
        else:
            first = rank if (rank - 1 - offset) % 2 == 0 else rank - 1
            partner = first + 1 if first == rank else first
            if max(first, first + 1) > k:
                partner = None
        if partner is None:
            out[rank] = out.get(rank, 0.0) + 0.5
        else:
            out[rank] = out.get(rank, 0.0) + 0.25
            out[partner] = out.get(partner, 0.0) + 0.25
    return out


def _insert_shift(position: int, k: int) -> dict[int, float]:
    """P(an item at ``position`` ends at each position after an insertion into a uniform slot 1..k)."""
    stay = (k - position) / k  # slot below the item
    out = {}
    if stay > 0:
        out[position] = stay
    if position < k:
        out[position + 1] = position / k
    return out  # at position k, any insertion pushes it out (probability position / k = 1 of leaving)


def position_probabilities(
    rank: int, k: int, *, mode: str, rate: float, insert_candidates: int = 0
) -> dict[int, float]:
    """P(the ranker's ``rank``-th item is shown at each 1-based position), over the randomisation.

    ``insert_candidates`` is how many results the insertion draws from (0: no insertion possible).
    A ranked item beyond ``k`` can only be shown by the insertion (see ``inserted_propensity``).
    """
    if rank > k:
        return {}
    fair = mode in ("fairpairs", "both") and rate > 0
    ins = mode in ("insert", "both") and rate > 0 and insert_candidates > 0
    after_fair = {rank: 1.0}
    if fair:
        after_fair = {rank: 1.0 - rate}
        for p, q in _fairpairs_marginal(rank, k).items():
            after_fair[p] = after_fair.get(p, 0.0) + rate * q
    if not ins:
        return after_fair
    out: dict[int, float] = {}
    for p, q in after_fair.items():
        out[p] = out.get(p, 0.0) + (1.0 - rate) * q
        for p2, q2 in _insert_shift(p, k).items():
            out[p2] = out.get(p2, 0.0) + rate * q * q2
    return out


def inserted_propensity(k: int, rate: float, insert_candidates: int) -> float:
    """P(one particular deep result is inserted at one particular slot)."""
    return rate / (insert_candidates * k) if insert_candidates else 0.0


def explore(
    ranked: Sequence[T],
    k: int,
    *,
    mode: str = "off",
    rate: float = 0.1,
    rng: random.Random | None = None,
    insert_from: int = 11,
    insert_to: int = 50,
) -> Exploration[T]:
    """The list to show from the ranker's ``ranked`` list (best first), and each shown item's propensity.

    ``mode``: "off", "fairpairs", "insert" or "both"; ``rate``: probability that a search is
    randomised (per randomisation); ``rng``: the random source (seed it for reproducible tests).
    The insertion draws from ranks ``insert_from``..``insert_to`` (1-based, inclusive) of ``ranked``.
    """
    if mode not in MODES:
        raise ValueError(f"exploration mode {mode!r} is not valid: use one of {', '.join(MODES)}.")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"exploration rate {rate!r} is not valid: must be in [0, 1].")
    if k < 1:
        raise ValueError(f"k={k} is not valid: must be >= 1.")
    rng = rng or random.Random()
    top = min(k, len(ranked))
    order = list(range(1, top + 1))  # 1-based ranks in display order
    applied: list[str] = []
    pool = list(range(max(insert_from, k + 1), min(insert_to, len(ranked)) + 1)) if top == k else []
    if mode in ("fairpairs", "both") and rate > 0 and rng.random() < rate:
        offset = rng.randrange(2)
        for first in range(1 + offset, top, 2):
            if rng.random() < 0.5:
                i = first - 1
                order[i], order[i + 1] = order[i + 1], order[i]
        applied.append("fairpairs")
    if mode in ("insert", "both") and rate > 0 and pool and rng.random() < rate:
        deep = rng.choice(pool)
        slot = rng.randrange(top)
        order = order[:slot] + [deep] + order[slot:]
        order = order[:top]
        applied.append("insert")
    propensity = []
    for position, rank in enumerate(order, start=1):
        if rank > top:
            propensity.append(inserted_propensity(top, rate, len(pool)))
        else:
            probs = position_probabilities(rank, top, mode=mode, rate=rate, insert_candidates=len(pool))
            propensity.append(probs.get(position, 0.0))
    return Exploration(
        shown=[ranked[r - 1] for r in order],
        propensity=propensity,
        original_rank=order,
        applied=tuple(applied),
    )
