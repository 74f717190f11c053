"""Held-out evaluators on hand-made sessions with a deterministic encoder (no model needed)."""

from __future__ import annotations

import pytest

from embedloop.evaluation import TripletAccuracyEvaluator
from embedloop.models.encoder import HashingEncoder
from embedloop.training.cycle import holdout_evaluators

TEXTS = {
    "AAPL": "apple inc common stock",
    "APLE": "hospitality reit shares",
    "MSFT": "microsoft corporation common stock",
    "TSLA": "tesla electric cars",
}


def session(query, shown, selected):
    return {"query": query, "shown": shown, "selected": [(i, shown.index(i) + 1, 1) for i in selected], "last_seq": 1}


def test_weights_change_accuracy_and_must_match_triplets():
    enc = HashingEncoder(64)
    good = ("apple stock", TEXTS["AAPL"], TEXTS["TSLA"])  # selected item shares words with the query
    bad = ("apple stock", TEXTS["TSLA"], TEXTS["AAPL"])
    plain = TripletAccuracyEvaluator([good, bad])(enc)
    assert plain["triplet_accuracy"] == pytest.approx(0.5)
    weighted = TripletAccuracyEvaluator([good, bad], weights=[3.0, 1.0], name="w")(enc)
    assert weighted["w_accuracy"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="one value per triplet"):
        TripletAccuracyEvaluator([good, bad], weights=[1.0])


def test_variants_see_only_what_their_definition_allows():
    # AAPL selected at rank 3: APLE and MSFT were skipped above it, TSLA was shown below it.
    sessions = [session("apple stock", ["APLE", "MSFT", "AAPL", "TSLA"], ["AAPL"])]
    ids = list(TEXTS)
    triplet, retrieval, variants = holdout_evaluators(sessions, TEXTS, ids, [TEXTS[i] for i in ids], 8)
    by_name = {v.name: v for v in variants}
    assert len(triplet.triplets) == 3
    assert [t[2] for t in by_name["skip_above"].triplets] == [TEXTS["APLE"], TEXTS["MSFT"]]
    # examined: 1/rank of the skipped result; ips: rank of the selection / rank of the skipped one
    assert list(by_name["examined"].weights) == pytest.approx([1.0, 1 / 2, 1 / 4])
    assert list(by_name["ips"].weights) == pytest.approx([3.0, 3 / 2, 3 / 4])
    assert retrieval.relevant == {"apple stock": {"AAPL"}}
    metrics = by_name["skip_above"](HashingEncoder(64))
    assert metrics["skip_above_count"] == 2 and 0.0 <= metrics["skip_above_accuracy"] <= 1.0
