"""Training examples and the held-out split, on hand-made sessions (no model needed)."""

from __future__ import annotations

import json

import pytest
from feedback_sim import session

from embedloop import InvalidInputError
from embedloop.training.examples import (
    TrainingExample,
    add_mined_negatives,
    cap_examples,
    examples_from_sessions,
    read_domain_examples,
    selected_by_query,
)
from embedloop.training.split import split_by_query

SESSIONS = [
    session("Apple stock", ["APLE", "MSFT", "AAPL", "TSLA"], ["AAPL"], 1),
    session("apple  STOCK", ["APLE", "AAPL", "MSFT"], ["AAPL"], 2),  # same query, normalised
    session("apple stock", ["MSFT", "APLE", "AAPU"], ["APLE"], 3),  # APLE was selected for it once
    session("tesla", ["TSLA", "AAPL"], ["TSLA"], 4),
]


def test_negatives_skip_above_then_shown_with_false_negative_guard():
    guard = selected_by_query(SESSIONS)
    examples = {(e.query.lower().split()[0], e.positive): e for e in examples_from_sessions(SESSIONS, guard=guard)}
    aapl = examples[("apple", "AAPL")]
    # skip-above first (MSFT above AAPL), APLE never (selected for this query once), then shown below
    assert aapl.negatives == ["MSFT", "TSLA"]
    assert len([e for e in examples.values() if e.positive == "AAPL"]) == 1  # merged duplicates
    assert examples[("tesla", "TSLA")].negatives == ["AAPL"]


def test_merged_examples_count_their_sessions_and_keep_the_newest_selection():
    guard = selected_by_query(SESSIONS)
    by_pair = {(e.query.lower().split()[0], e.positive): e for e in examples_from_sessions(SESSIONS, guard=guard)}
    assert (by_pair[("apple", "AAPL")].clicks, by_pair[("apple", "AAPL")].newest_seq) == (2, 2)
    assert (by_pair[("tesla", "TSLA")].clicks, by_pair[("tesla", "TSLA")].newest_seq) == (1, 4)


def test_cap_keeps_the_newest_window_then_the_best_supported_pairs():
    old_popular = [session("old popular", ["A", "B"], ["A"], seq) for seq in (1, 2, 3)]
    old_once = [session(f"old {i}", ["A", "B"], ["A"], 10 + i) for i in range(3)]
    new = [session(f"new {i}", ["A", "B"], ["A"], 100 + i) for i in range(2)]
    sessions = old_popular + old_once + new
    examples = examples_from_sessions(sessions, guard=selected_by_query(sessions))
    judged = TrainingExample("judged", "B", ["A"], source="judgment")
    capped = cap_examples([*examples, judged], 4, since=50)
    queries = [e.query for e in capped]
    # both new pairs, then the pair three sessions chose, then the newest of the single-click old pairs
    assert queries == ["old popular", "old 2", "new 0", "new 1", "judged"]  # input order kept; judgments kept
    assert cap_examples(examples, 0, since=50) == examples  # 0: no limit
    assert cap_examples(examples, 10, since=50) == examples  # under the limit: untouched
    only_new = cap_examples(examples, 1, since=50)
    assert [e.query for e in only_new] == ["new 1"]  # a window over the limit: by support, then the newest


def test_sources_and_position_bias():
    guard = selected_by_query(SESSIONS)
    only_skip = examples_from_sessions(SESSIONS[:1], guard=guard, sources=("skip_above",))
    assert only_skip[0].negatives == ["MSFT"]
    weighted = examples_from_sessions(SESSIONS[:1], guard=guard, position_bias=True)
    assert weighted[0].weight == 3.0  # selected at rank 3: inverse propensity 3 ** 1


def test_mined_negatives_respect_the_guard():
    guard = selected_by_query(SESSIONS)
    examples = examples_from_sessions(SESSIONS[3:], guard=guard, sources=())
    added = add_mined_negatives(
        examples, lambda qs, n: [["TSLA", "APLE", "SPY", "QQQ"]] * len(qs), guard=guard, per_example=2
    )
    assert added == 2 and examples[0].negatives == ["APLE", "SPY"]


def test_split_holds_out_newest_queries_without_leakage():
    sessions = [session(f"q{i % 10}", ["A", "B"], ["A"], i) for i in range(40)]
    split = split_by_query(sessions, 0.2)
    train_q = {s.query for s in split.train}
    held_q = {s.query for s in split.holdout}
    assert not train_q & held_q
    assert held_q == {"q8", "q9"}  # the newest by last selection
    assert (split.train_queries, split.holdout_queries) == (8, 2)


def test_domain_examples_file(tmp_path):
    path = tmp_path / "domain.jsonl"
    path.write_text(json.dumps({"query": "iphone maker", "positive": "AAPL - Apple Inc.", "negative": "APLE"}) + "\n")
    (ex,) = read_domain_examples(path)
    assert (ex.query, ex.positive_text, ex.negative_texts) == ("iphone maker", "AAPL - Apple Inc.", ["APLE"])
    path.write_text('{"query": "x"}\n')
    with pytest.raises(InvalidInputError, match="line 1"):
        read_domain_examples(path)
