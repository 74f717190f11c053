"""The sequential test's promised error rates, checked on simulated outcomes where the truth is known."""

from __future__ import annotations

import math
import random

import pytest

from embedloop.evaluation.precheck import gate_alone, precheck
from embedloop.evaluation.trial_test import (
    JUDGED_EFFECT,
    SequentialTest,
    TrialEvidence,
    Verdict,
    judged_outcome,
)


def run_trial(test: SequentialTest, p_win: float, p_decisive: float, rng: random.Random) -> tuple[Verdict, int]:
    """One trial checked after every search: each search is decisive with p_decisive, a win with p_win."""
    wins = losses = 0
    for n in range(1, test.max_searches + 1):
        if rng.random() < p_decisive:
            if rng.random() < p_win:
                wins += 1
            else:
                losses += 1
        verdict = test.decide(TrialEvidence(n, wins, losses))
        if verdict is not Verdict.CONTINUE:
            return verdict, n
    raise AssertionError("the search limit must force a decision")


def rates(test: SequentialTest, p_win: float, trials: int = 400, seed: int = 7) -> tuple[float, float, list[int]]:
    rng = random.Random(seed)
    outcomes = [run_trial(test, p_win, 0.4, rng) for _ in range(trials)]
    promoted = sum(v is Verdict.PROMOTE for v, _ in outcomes) / trials
    rejected = sum(v is Verdict.REJECT for v, _ in outcomes) / trials
    return promoted, rejected, sorted(n for _, n in outcomes)


def test_equal_models_are_promoted_in_at_most_alpha_of_trials():
    test = SequentialTest(alpha=0.05, beta=0.05, min_effect=0.55, max_searches=3000)
    promoted, rejected, _ = rates(test, 0.5)
    assert promoted <= 0.05
    assert promoted + rejected == 1.0


def test_a_worse_candidate_is_almost_never_promoted_and_rejected_fast():
    test = SequentialTest(alpha=0.05, beta=0.05, min_effect=0.55, max_searches=3000)
    promoted, rejected, searches = rates(test, 0.40)
    assert promoted <= 0.01 and rejected >= 0.99
    assert searches[len(searches) // 2] < 500  # the median trial needs well under the limit


def test_a_better_candidate_is_promoted_with_power_1_minus_beta():
    test = SequentialTest(alpha=0.05, beta=0.05, min_effect=0.55, max_searches=5000)
    promoted, _rejected, searches = rates(test, 0.60, trials=200)
    assert promoted >= 0.95
    assert searches[len(searches) // 2] < 1500


def test_judged_outcome_compares_dcg_over_the_judged_relevant_items():
    relevant = {"a", "b"}
    assert judged_outcome(relevant, ["x", "a", "y"], ["a", "x", "y"]) == 1  # the candidate ranks a higher
    assert judged_outcome(relevant, ["a", "b"], ["b", "a"]) == 0  # the same items at the same ranks overall
    assert judged_outcome(relevant, ["a", "x"], ["x", "y"]) == -1  # the candidate lost a
    assert judged_outcome(set(), ["a"], ["b"]) == 0
    deep = ["x"] * 10 + ["a"]
    assert judged_outcome(relevant, deep, ["y"] * 10) == 0  # beyond rank 10 nothing counts


def test_judged_outcomes_add_their_own_factor_and_keep_the_error_bound():
    test = SequentialTest(alpha=0.05, beta=0.05, min_effect=0.55, max_searches=3000)
    clicks_only = TrialEvidence(100, 40, 30)
    judged = TrialEvidence(100, 40, 30, judged_wins=3, judged_losses=1)
    step = 3 * math.log(2 * JUDGED_EFFECT) + math.log(2 * (1 - JUDGED_EFFECT))
    assert test.log_likelihood_ratio(judged) == pytest.approx(test.log_likelihood_ratio(clicks_only) + step)
    report = test.report(judged)
    assert report["judged_wins"] == 3 and report["judged_losses"] == 1
    # eight net judged wins alone reach the promotion bound; a no-better candidate's judged outcomes are coin flips
    assert test.decide(TrialEvidence(0, 0, 0, judged_wins=8)) is Verdict.PROMOTE
    rng = random.Random(11)
    promoted = 0
    for _ in range(400):
        wins = losses = jw = jl = 0
        for n in range(1, 1001):
            if rng.random() < 0.3:
                wins, losses = (wins + 1, losses) if rng.random() < 0.5 else (wins, losses + 1)
            if rng.random() < 0.05:  # a judgment now and then, no better either
                jw, jl = (jw + 1, jl) if rng.random() < 0.5 else (jw, jl + 1)
            verdict = test.decide(TrialEvidence(n, wins, losses, jw, jl))
            if verdict is not Verdict.CONTINUE:
                promoted += verdict is Verdict.PROMOTE
                break
    assert promoted / 400 <= 0.05


def test_bounds_and_report():
    test = SequentialTest(alpha=0.05, beta=0.1, min_effect=0.6, max_searches=100)
    assert test.upper == pytest.approx(math.log(20)) and test.lower == pytest.approx(math.log(0.1))
    # 8 wins in a row: 8 log 1.2 = 1.46 < 3.0: continue; 17 wins: 3.1 >= 3.0: promote
    assert test.decide(TrialEvidence(8, 8, 0)) is Verdict.CONTINUE
    assert test.decide(TrialEvidence(17, 17, 0)) is Verdict.PROMOTE
    assert test.decide(TrialEvidence(20, 0, 20)) is Verdict.REJECT
    assert test.decide(TrialEvidence(100, 10, 10)) is Verdict.REJECT  # the search limit
    report = test.report(TrialEvidence(30, 12, 8))
    assert report["ties"] == 10 and report["win_rate"] == 0.6 and report["decision"] == "continue"
    assert report["z"] == pytest.approx(4 / math.sqrt(20), abs=1e-3)
    limit = test.report(TrialEvidence(100, 10, 10))
    assert "without a decision" in str(limit["decision_reason"])
    with pytest.raises(ValueError):
        SequentialTest(min_effect=0.5)


ACTIVE = {"triplet_accuracy": 0.90, "retrieval_ndcg@10": 0.85, "triplet_margin": 0.1}


def test_a_tie_is_not_an_improvement_when_no_users_judge():
    reasons = gate_alone(ACTIVE, dict(ACTIVE), min_accuracy=0.7, tolerance=0.02)
    assert any("not an improvement" in r for r in reasons) and any("nothing learned" in r for r in reasons)
    # a tie on accuracy is broken by the margin: a larger one is an improvement, a smaller one is not
    tie_wider = {**ACTIVE, "triplet_margin": 0.2}
    assert gate_alone(ACTIVE, tie_wider, min_accuracy=0.7, tolerance=0.02) == []
    tie_narrower = {**ACTIVE, "triplet_margin": 0.05}
    assert any(
        "tie is not an improvement" in r for r in gate_alone(ACTIVE, tie_narrower, min_accuracy=0.7, tolerance=0.02)
    )
    better = {**ACTIVE, "triplet_accuracy": 0.91}
    assert gate_alone(ACTIVE, better, min_accuracy=0.7, tolerance=0.02) == []


def test_the_precheck_lets_incumbent_biased_losses_through_but_stops_broken_candidates():
    # A candidate that loses a little on clicks the active model chose (as better ones do) may go on trial.
    biased = {"triplet_accuracy": 0.87, "retrieval_ndcg@10": 0.70, "triplet_margin": 0.05}
    assert precheck(ACTIVE, biased, min_accuracy=0.7, accuracy_drop=0.1, ndcg_drop=0.3) == []
    broken = {"triplet_accuracy": 0.55, "retrieval_ndcg@10": 0.30, "triplet_margin": -0.1}
    reasons = precheck(ACTIVE, broken, min_accuracy=0.7, accuracy_drop=0.1, ndcg_drop=0.3)
    assert len(reasons) == 3
    nan = {**biased, "triplet_margin": float("nan")}
    assert any("NaN" in r for r in precheck(ACTIVE, nan, min_accuracy=0.7, accuracy_drop=0.1, ndcg_drop=0.3))
    assert precheck(ACTIVE, dict(ACTIVE), min_accuracy=0.7, accuracy_drop=0.1, ndcg_drop=0.3)  # a no-op
