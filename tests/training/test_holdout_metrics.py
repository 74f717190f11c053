"""Held-out evaluators on hand-made sessions with a deterministic encoder (no model needed)."""

from __future__ import annotations

import math

import pytest

from embedloop.evaluation import TripletAccuracyEvaluator
from embedloop.evaluation.precheck import gate_alone, precheck
from embedloop.models.encoder import HashingEncoder
from embedloop.training.cycle import holdout_evaluators
from embedloop.types import FeedbackSession

TEXTS = {
    "AAPL": "apple inc common stock",
    "APLE": "hospitality reit shares",
    "MSFT": "microsoft corporation common stock",
    "TSLA": "tesla electric cars",
}
GOOD = ("apple stock", TEXTS["AAPL"], TEXTS["TSLA"])  # the selected item shares words with the query
BAD = ("apple stock", TEXTS["TSLA"], TEXTS["AAPL"])


def session(query, shown, selected):
    return FeedbackSession("s", query, shown, [(i, shown.index(i) + 1, 1) for i in selected], last_seq=1)


def evaluators(sessions):
    ids = list(TEXTS)
    return holdout_evaluators(sessions, TEXTS, ids, [TEXTS[i] for i in ids], 8)


def test_weightings_are_weighted_means_of_the_same_margins():
    enc = HashingEncoder(64)
    metrics = TripletAccuracyEvaluator([GOOD, BAD], weightings={"w": [3.0, 1.0], "only_bad": [0.0, 2.0]})(enc)
    assert metrics["triplet_accuracy"] == pytest.approx(0.5)
    assert metrics["w_accuracy"] == pytest.approx(0.75)
    assert metrics["only_bad_accuracy"] == 0.0 and metrics["only_bad_count"] == 1
    # BAD is GOOD with selected and skipped swapped: margins m and -m.
    m = -metrics["only_bad_margin"]
    assert m > 0 and metrics["triplet_margin"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["w_margin"] == pytest.approx((3 * m - m) / 4)
    with pytest.raises(ValueError, match="'w' has 1 weights for 2 triplets"):
        TripletAccuracyEvaluator([GOOD, BAD], weightings={"w": [1.0]})


def test_diagnostics_follow_the_ranks_of_selection_and_skip():
    # AAPL selected at rank 3: APLE and MSFT were skipped above it, TSLA was shown below it.
    triplet, retrieval = evaluators([session("apple stock", ["APLE", "MSFT", "AAPL", "TSLA"], ["AAPL"])])
    assert len(triplet.triplets) == 3
    assert list(triplet.weightings["skip_above"]) == [1.0, 1.0, 0.0]
    assert list(triplet.weightings["examined"]) == pytest.approx([1.0, 1 / 2, 1 / 4])
    assert list(triplet.weightings["ips"]) == pytest.approx([3.0, 3 / 2, 3 / 4])
    assert retrieval.relevant == {"apple stock": {"AAPL"}}
    metrics = triplet(HashingEncoder(64))
    assert metrics["skip_above_count"] == 2 and 0.0 <= metrics["skip_above_accuracy"] <= 1.0


def test_a_diagnostic_with_nothing_to_score_does_not_make_the_gate_see_nan():
    # Every selection at rank 1: there is nothing above it, so skip_above has no pairs.
    triplet, _retrieval = evaluators([session("apple stock", ["AAPL", "TSLA", "APLE"], ["AAPL"])])
    metrics = triplet(HashingEncoder(64))
    assert metrics["skip_above_count"] == 0 and "skip_above_accuracy" not in metrics
    assert not any(isinstance(v, float) and math.isnan(v) for v in metrics.values())
    base = {**metrics, "retrieval_ndcg@10": 0.9, "triplet_accuracy": 0.9}
    better = {**base, "triplet_accuracy": 1.0, "triplet_margin": metrics["triplet_margin"] + 0.1}
    assert gate_alone(base, better, min_accuracy=0.7, tolerance=0.02) == []
    assert precheck(base, better, min_accuracy=0.7, accuracy_drop=0.1, ndcg_drop=0.3) == []
