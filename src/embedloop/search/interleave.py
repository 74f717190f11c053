"""Team-draft interleaving of two rankings, with credit only where the rankings differ.

Radlinski, Kurup & Joachims (2008), "How does clickthrough data reflect
retrieval quality?"; Chapelle, Joachims, Radlinski & Yue (2012), "Large-scale
validation and analysis of interleaved search evaluation".

Team draft: the two rankings take turns, the team with fewer picks first and a
coin flip on equal counts, each adding its highest-ranked result not shown yet;
every shown result remembers the team that picked it, and a selection credits
that team. Two refinements make each search carry more signal:

- a **shared prefix** (both rankings agree on the first results) is shown as is
  and credits nobody: with plain team draft a coin decides who owns it, and
  every click on it is noise;
- more generally, a result that **both rankings put at the same rank** is
  labelled ``both`` and credits nobody, for the same reason.

Under the null hypothesis (the users cannot tell the models apart) every
credited click is equally likely to go either way, so wins and losses are
exchangeable, which is what the sequential test assumes.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

ACTIVE = "active"
CANDIDATE = "candidate"
BOTH = "both"

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Shown(Generic[K]):
    """One result of an interleaved list: the item, the team it credits, the score of the ranking it came from."""

    key: K
    source: str
    score: float


def team_draft(
    active: Sequence[tuple[K, float]],
    candidate: Sequence[tuple[K, float]],
    k: int,
    rng: random.Random,
) -> list[Shown[K]]:
    """Interleave two rankings of ``(key, score)`` (best first) into at most ``k`` results."""
    rank_a = {key: r for r, (key, _s) in enumerate(active)}
    rank_c = {key: r for r, (key, _s) in enumerate(candidate)}
    score_a = dict(active)
    score_c = dict(candidate)
    shown: list[Shown[K]] = []
    seen: set[K] = set()
    # The shared prefix: shown as is, credited to nobody.
    i = 0
    while i < min(len(active), len(candidate), k) and active[i][0] == candidate[i][0]:
        key = active[i][0]
        shown.append(Shown(key, BOTH, score_a[key]))
        seen.add(key)
        i += 1
    pos = {ACTIVE: i, CANDIDATE: i}
    picks = {ACTIVE: 0, CANDIDATE: 0}
    lists = {ACTIVE: active, CANDIDATE: candidate}

    def next_of(team: str) -> K | None:
        ranking = lists[team]
        while pos[team] < len(ranking) and ranking[pos[team]][0] in seen:
            pos[team] += 1
        return ranking[pos[team]][0] if pos[team] < len(ranking) else None

    while len(shown) < k:
        if picks[ACTIVE] != picks[CANDIDATE]:
            team = ACTIVE if picks[ACTIVE] < picks[CANDIDATE] else CANDIDATE
        else:
            team = ACTIVE if rng.random() < 0.5 else CANDIDATE
        picked = next_of(team)
        if picked is None:  # this ranking is exhausted: the other one fills the list
            team = CANDIDATE if team == ACTIVE else ACTIVE
            picked = next_of(team)
            if picked is None:
                break
        key = picked
        seen.add(key)
        picks[team] += 1
        same_rank = key in rank_a and key in rank_c and rank_a[key] == rank_c[key]
        source = BOTH if same_rank else team
        score = score_a[key] if team == ACTIVE else score_c[key]
        shown.append(Shown(key, source, score))
    return shown


def credit(sources: Sequence[str | None]) -> int:
    """The candidate's credit for one search from the sources of its selected results: > 0 win, < 0 loss, 0 tie."""
    return sum(1 for s in sources if s == CANDIDATE) - sum(1 for s in sources if s == ACTIVE)
