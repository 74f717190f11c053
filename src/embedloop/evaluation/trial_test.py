"""The trial's sequential test: is the candidate preferred by users, checked after every search?

Each trial search ends as a *win* (the users' selections credited the
candidate more than the active model), a *loss* or a *tie* (see
``search/interleave.py``). Ties carry no information about which model is
better and are left out; over the ``n = wins + losses`` decisive searches the
candidate's win rate is ``p``. The test compares

- H0: ``p = 1/2`` (the candidate is no better), against
- H1: ``p = min_effect`` (the candidate is better by the smallest effect worth detecting quickly),

with the likelihood ratio of the outcomes so far,
``log LR = wins * log(2 p1) + losses * log(2 (1 - p1))`` (Wald's SPRT).

Decisions and the error rates they promise (Ville's inequality: a likelihood
ratio is a non-negative martingale under the null, so the bounds hold however
often the test is looked at, which is what lets it run after every search):

- **promote** as soon as ``log LR >= log(1 / alpha)``: a candidate that is no
  better than the active model (``p <= 1/2``) is promoted with probability at
  most ``alpha``;
- **reject** as soon as ``log LR <= log(beta)``: a candidate at least as good as
  ``min_effect`` (``p >= p1``) is rejected by the test with probability at most
  ``beta``; a worse candidate (``p < 1/2``) drifts there fastest;
- **reject** when the trial's ``max_searches`` pass with neither bound reached
  (no evidence either way): the active model stays. Truncation can only lower
  the probability of a promotion, so the ``alpha`` bound is unchanged.

**Explicit judgments** (``review_queue`` answers, ``record_judgment``) recorded
while the trial runs are a second stream of outcomes: for each judged query
with a relevant item, both models' top 10 are scored by DCG over the judged-
relevant items, and the query is a *judged win* for the candidate (higher),
a *judged loss* (lower) or neither (:func:`judged_outcome`). They enter the
same likelihood ratio with their own alternative, ``p = JUDGED_EFFECT``
(0.75: a person comparing results is far less noisy than a click):
``log LR += judged_wins * log(2 * 0.75) + judged_losses * log(2 * 0.25)``.
Each stream's factor has expectation 1 when the models are equally good, so
their product is still a martingale under the null and the bounds above hold
unchanged. One judged win weighs as much as about four decisive searches.

The primary metric is the candidate's win rate over decisive searches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    """What the evidence so far decides."""

    CONTINUE = "continue"
    PROMOTE = "promote"
    REJECT = "reject"


#: The trial's primary metric.
PRIMARY = "win_rate"
#: The alternative win rate of a judged comparison (see the module docstring).
JUDGED_EFFECT = 0.75
#: Ranks of each model's list a judged comparison reads.
JUDGED_DEPTH = 10


def judged_outcome(relevant: set[str], active: Sequence[str], candidate: Sequence[str]) -> int:
    """+1 when the candidate's list has more DCG over the ``relevant`` items than the active one's, -1 when less, 0 if equal.

    Only the first :data:`JUDGED_DEPTH` results of each list count; items not judged relevant add nothing.
    """

    def dcg(ranking: Sequence[str]) -> float:
        return sum(1.0 / math.log2(r + 1) for r, item in enumerate(ranking[:JUDGED_DEPTH], start=1) if item in relevant)

    difference = dcg(candidate) - dcg(active)
    if abs(difference) < 1e-9:
        return 0
    return 1 if difference > 0 else -1


@dataclass(frozen=True)
class TrialEvidence:
    """The outcome counts of a trial's searches (and of the queries judged during it) so far."""

    searches: int
    wins: int
    losses: int
    judged_wins: int = 0
    judged_losses: int = 0

    @property
    def ties(self) -> int:
        """Searches with no winner (no selection, or equal credit)."""
        return self.searches - self.wins - self.losses

    @property
    def decisive(self) -> int:
        """Searches with a winner."""
        return self.wins + self.losses


@dataclass(frozen=True)
class SequentialTest:
    """Wald's sequential probability ratio test on the candidate's win rate (see the module docstring)."""

    alpha: float = 0.05
    beta: float = 0.05
    min_effect: float = 0.55
    max_searches: int = 4000

    def __post_init__(self) -> None:
        if not (0.0 < self.alpha < 1.0 and 0.0 < self.beta < 1.0):
            raise ValueError("alpha and beta must be in (0, 1)")
        if not 0.5 < self.min_effect < 1.0:
            raise ValueError("min_effect must be in (0.5, 1)")

    @property
    def upper(self) -> float:
        """The log likelihood ratio at which the candidate is promoted."""
        return math.log(1.0 / self.alpha)

    @property
    def lower(self) -> float:
        """The log likelihood ratio at which the candidate is rejected."""
        return math.log(self.beta)

    def log_likelihood_ratio(self, evidence: TrialEvidence) -> float:
        """``log P(outcomes | p = min_effect) / P(outcomes | p = 1/2)``."""
        p1, pj = self.min_effect, JUDGED_EFFECT
        clicks = evidence.wins * math.log(2.0 * p1) + evidence.losses * math.log(2.0 * (1.0 - p1))
        return clicks + evidence.judged_wins * math.log(2.0 * pj) + evidence.judged_losses * math.log(2.0 * (1.0 - pj))

    def decide(self, evidence: TrialEvidence) -> Verdict:
        """Promote, reject or continue on the evidence so far."""
        llr = self.log_likelihood_ratio(evidence)
        if llr >= self.upper:
            return Verdict.PROMOTE
        if llr <= self.lower or evidence.searches >= self.max_searches:
            return Verdict.REJECT
        return Verdict.CONTINUE

    def report(self, evidence: TrialEvidence) -> dict[str, float | int | str | None]:
        """The numbers an operator reads: counts, win rate, z, the log LR and its bounds, the verdict."""
        n = evidence.decisive
        llr = self.log_likelihood_ratio(evidence)
        verdict = self.decide(evidence)
        reason = None
        if verdict is Verdict.PROMOTE:
            reason = f"log likelihood ratio {llr:.2f} reached {self.upper:.2f} (alpha {self.alpha})"
        elif verdict is Verdict.REJECT:
            if llr <= self.lower:
                reason = f"log likelihood ratio {llr:.2f} fell to {self.lower:.2f} (beta {self.beta})"
            else:
                reason = f"{evidence.searches} trial searches passed without a decision (limit {self.max_searches})"
        return {
            "searches": evidence.searches,
            "wins": evidence.wins,
            "losses": evidence.losses,
            "ties": evidence.ties,
            "judged_wins": evidence.judged_wins,
            "judged_losses": evidence.judged_losses,
            PRIMARY: round(evidence.wins / n, 4) if n else None,
            "z": round((evidence.wins - evidence.losses) / math.sqrt(n), 3) if n else 0.0,
            "statistic": round(llr, 4),
            "promote_at": round(self.upper, 4),
            "reject_at": round(self.lower, 4),
            "decision": verdict.value,
            "decision_reason": reason,
        }
