"""Denoised positives and false-negative-safe negatives (training/signal.py), on hand-made sessions."""

from __future__ import annotations

from feedback_sim import session

from embedloop.feedback.click_model import ClickModel
from embedloop.training.examples import TrainingExample, examples_from_sessions, selected_by_query
from embedloop.training.signal import apply_click_model, check_margins, passes_margin


def test_safe_mode_keeps_results_below_the_last_selection_out_of_the_negatives():
    sessions = [session("q", ["A", "B", "C", "D", "E"], ["B", "C"])]
    guard = selected_by_query(sessions)
    plain = {e.positive: e for e in examples_from_sessions(sessions, guard=guard)}
    safe = {e.positive: e for e in examples_from_sessions(sessions, guard=guard, safe=True)}
    assert plain["C"].negatives == ["A", "D", "E"]
    # A was shown above (skip-above: trusted); D, E were below the last selection: unverified
    assert safe["C"].negatives == ["A"] and safe["C"].trusted == ["A"]
    assert safe["C"].unverified == ["D", "E"]
    assert safe["B"].negatives == ["A"] and safe["B"].unverified == ["D", "E"]


def test_relative_margin_rule_matches_sentence_transformers():
    # keep a negative only if it is at least 5 % of |positive| below the positive
    assert passes_margin(0.8, 0.76, 0.05)
    assert not passes_margin(0.8, 0.761, 0.05)
    assert passes_margin(-0.2, -0.3, 0.05)
    assert passes_margin(0.5, 0.5, 0.0)


def test_check_margins_drops_near_duplicates_keeps_trusted_and_tops_up_from_the_index():
    scores = {"pos": 0.8, "A": 0.95, "D": 0.79, "E": 0.3, "M1": 0.78, "M2": 0.5, "M3": 0.4, "SEL": 0.2}

    def score(queries, ids):
        return [[scores[i] for i in row] for row in ids]

    def mine(queries, n):
        return [[(i, scores[i]) for i in ("pos", "M1", "SEL", "M2", "M3")] for _ in queries]

    ex = TrainingExample("q", "pos", ["A", "M9"], trusted=["A"], unverified=["D", "E"])
    scores["M9"] = 0.9  # a mined negative scoring above the positive: likely an unjudged relevant one
    info = check_margins([ex], score, relative_margin=0.05, per_example=3, guard={"q": {"SEL"}}, mine=mine)
    # A is trusted even though it scores higher (the user saw it above and passed it over);
    # M9 and D are within the margin: dropped; E passes; top-up skips pos, M1 (margin) and SEL (guard)
    assert ex.negatives == ["A", "E", "M2"]
    assert ex.unverified == []
    assert info == {"checked": 3, "dropped": 2, "mined": 1}


def test_check_margins_leaves_domain_examples_alone():
    ex = TrainingExample("q", "", source="domain", positive_text="p", negative_texts=["n"])
    assert check_margins([ex], lambda q, i: [], relative_margin=0.05, per_example=2, guard={})["checked"] == 0
    assert ex.negative_texts == ["n"]


def test_click_model_filters_unlikely_positives_and_keeps_the_rest():
    model = ClickModel(examination=[1.0], prior=[0.5], eps1=0.9, eps0=0.1)
    model.posterior = {("apple stock", "APLE"): 0.1, ("apple stock", "AAPL"): 0.95}
    examples = [
        TrainingExample("Apple  Stock", "APLE"),
        TrainingExample("apple stock", "AAPL", weight=3.0),
        TrainingExample("unseen", "X"),
        TrainingExample("q", "", source="domain", positive_text="t"),
    ]
    kept, dropped = apply_click_model(examples, model, 0.5)
    assert dropped == 1
    assert [e.positive for e in kept] == ["AAPL", "X", ""]
    assert kept[0].relevance == 0.95 and kept[0].weight == 3.0 * 0.95
    assert kept[1].relevance is None
