"""Judgments as training labels: they change the next cycle's examples, and clicks never overrule them."""

from __future__ import annotations

import pytest

from embedloop import EmbedLoop
from embedloop.feedback.judgments import (
    JUDGMENT_WEIGHT,
    in_holdout,
    judgment_evaluators,
    judgment_examples,
    judgment_holdout,
    merge_judgments,
    overrule_sessions,
)
from embedloop.feedback.persistence import count_judgments
from embedloop.training.cycle import next_training_examples
from embedloop.training.examples import TrainingExample


@pytest.fixture
def loop(fake_loop: EmbedLoop, finance_items) -> EmbedLoop:
    fake_loop.add_items(finance_items)
    return fake_loop


def by_pair(examples: list[TrainingExample]) -> dict[tuple[str, str], TrainingExample]:
    return {(ex.query.lower(), ex.positive): ex for ex in examples}


def train_query(loop: EmbedLoop) -> str:
    """A query the held-out split puts in training (the split is by query)."""
    for n in range(50):
        query = f"apple stock {n}"
        loop.record_feedback(query, shown=["APLE", "AAPL", "MSFT"], selected=["APLE"])
        examples, _ = next_training_examples(loop.services())
        if any(ex.query == query for ex in examples):
            return query
    raise AssertionError("no query landed in the training split")


def test_a_judgment_changes_the_next_cycles_examples(loop: EmbedLoop):
    query = train_query(loop)
    before = by_pair(next_training_examples(loop.services())[0])
    assert (query, "APLE") in before  # the click made APLE a positive
    assert (query, "AAPL") not in before
    loop.record_judgment(query, "APLE", relevant=False, reviewer="ann")
    loop.record_judgment(query, "AAPL", relevant=True, reviewer="ann")
    after = by_pair(next_training_examples(loop.services())[0])
    assert (query, "APLE") not in after  # the click never overrules the judgment
    judged = after[(query, "AAPL")]
    assert judged.source == "judgment" and judged.weight == JUDGMENT_WEIGHT
    assert judged.negatives[0] == "APLE"
    assert all("AAPL" not in ex.negatives for ex in after.values() if ex.query == query)


def test_held_out_clicks_train_once_judgments_judge(loop: EmbedLoop):
    """The click split holds queries out for the pre-check; when held-out judgments judge instead, they train."""
    from embedloop.training.split import split_by_query

    clicked = [f"apple stock {n}" for n in range(20)]
    for query in clicked:
        loop.record_feedback(query, shown=["APLE", "AAPL", "MSFT"], selected=["AAPL"])
    split = split_by_query(loop.store.feedback_sessions(), loop.settings.holdout_fraction)
    held_out = {s.query for s in split.holdout}
    assert held_out

    def click_queries() -> set[str]:
        return {ex.query for ex in next_training_examples(loop.services())[0] if ex.source != "judgment"}

    assert click_queries() == set(clicked) - held_out
    for n in range(60):  # enough judged queries for a held-out judgment set (~18 of 60)
        loop.record_judgment(f"tesla shares {n}", "TSLA", relevant=True)
        loop.record_judgment(f"tesla shares {n}", "SPY", relevant=False)
    assert judgment_holdout(loop.store) is not None
    assert click_queries() == set(clicked)


def test_merge_keeps_relevant_items_out_of_negatives(loop: EmbedLoop):
    loop.record_judgment("tesla", "TSLA", True)
    loop.record_judgment("tesla", "SPY", False)
    clicks = [TrainingExample("Tesla", "QQQ", ["TSLA", "MSFT"])]
    guard = {"tesla": {"QQQ", "SPY"}}
    merged = by_pair(merge_judgments(loop.store, clicks, guard))
    assert merged[("tesla", "QQQ")].negatives == ["SPY", "MSFT"]  # judged-irrelevant first, TSLA removed
    assert merged[("tesla", "TSLA")].negatives == ["SPY"]
    assert guard["tesla"] == {"QQQ", "TSLA"}  # SPY may be a negative now, TSLA never


def test_holdout_is_stable_and_kept_out_of_training(loop: EmbedLoop):
    queries = [f"query {n}" for n in range(60)]
    for q in queries:
        loop.record_judgment(q, "AAPL", True)
        loop.record_judgment(q, "APLE", False)
    held = judgment_holdout(loop.store, min_queries=5)
    assert held is not None
    assert held.keys == {q for q in queries if in_holdout(q)}
    assert 5 <= len(held.keys) < 40
    assert sorted(held.triplets())[0][1:] == ("AAPL", "APLE")
    assert all(ids == {"AAPL"} for ids in held.qrels().values())
    train = judgment_examples(loop.store, exclude=held.keys)
    assert {ex.query for ex in train}.isdisjoint(held.keys)
    assert len(train) == 60 - len(held.keys)
    assert judgment_holdout(loop.store, min_queries=100) is None


def test_judgment_evaluators_score_the_held_out_labels(loop: EmbedLoop):
    for n in range(30):
        loop.record_judgment(f"apple inc common stock {n}", "AAPL", True)
        loop.record_judgment(f"apple inc common stock {n}", "TSLA", False)
    held = judgment_holdout(loop.store, min_queries=3)
    assert held is not None
    catalog = loop.store.catalog()
    texts = {r.id: r.text for r in catalog}
    triplet, retrieval = judgment_evaluators(held, texts, [r.id for r in catalog], [r.text for r in catalog])
    encoder = loop.searcher.state.encoder
    assert len(triplet.triplets) == len(held.keys)
    assert triplet(encoder)["triplet_accuracy"] == pytest.approx(
        1.0
    )  # the hashing encoder puts AAPL above TSLA for these queries
    assert retrieval(encoder)["retrieval_mrr@10"] == pytest.approx(1.0)


def test_overruled_sessions_and_judgments_since(loop: EmbedLoop):
    loop.record_feedback("apple", shown=["APLE", "AAPL"], selected=["APLE", "AAPL"])
    loop.record_feedback("tesla", shown=["TSLA"], selected=["TSLA"])
    loop.record_feedback("Apple", shown=["APLE"], selected=["APLE"])
    before = loop.store.feedback_sessions()
    (first,) = loop.judgments() or [None]  # no judgments yet
    assert first is None and count_judgments(loop.store) == 0
    loop.record_judgment("APPLE", "APLE", relevant=False)
    after = overrule_sessions(loop.store, before)
    assert [s.selected_ids for s in after] == [["AAPL"], ["TSLA"]]
    assert before[0].selected_ids == ["APLE", "AAPL"]  # the input is not changed
    stamp = loop.store.feedback_sessions()[-1].created_at
    assert count_judgments(loop.store, since=stamp) == 1


def test_max_train_examples_bounds_the_next_cycle_and_keeps_judgments(settings, finance_items):
    from dataclasses import replace

    from embedloop.models.encoder import HashingEncoder

    with EmbedLoop(replace(settings, max_train_examples=0, min_train_examples=5), encoder=HashingEncoder()) as free:
        free.add_items(finance_items)
        for n in range(40):
            free.record_feedback(f"tesla shares {n}", shown=["SPY", "TSLA", "MSFT"], selected=["TSLA"])
        free.record_judgment("apple stock", "AAPL", True)
        everything, _ = next_training_examples(free.services())
    with EmbedLoop(replace(settings, max_train_examples=10, min_train_examples=5), encoder=HashingEncoder()) as capped:
        examples, _ = next_training_examples(capped.services())
    clicks = [ex for ex in examples if ex.source == "feedback"]
    all_clicks = [ex for ex in everything if ex.source == "feedback"]
    assert len(all_clicks) > 10 and len(clicks) == 10
    # nothing has been trained yet, so the whole log is the newest window: its ten newest pairs stay
    newest = sorted((ex.newest_seq for ex in all_clicks), reverse=True)[:10]
    assert sorted(ex.newest_seq for ex in clicks) == sorted(newest)
    assert any(ex.source == "judgment" for ex in examples)  # judgments are never capped away
