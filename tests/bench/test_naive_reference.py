"""The naive reference loop's training rows (benchmarks/quality.py): every click, skip-above negatives."""

from __future__ import annotations

from embedloop.benchmarks.quality import naive_rows
from embedloop.types import FeedbackSession


def test_every_click_is_a_row_with_each_result_skipped_above_it():
    texts = {i: f"t{i}" for i in "ABCDE"}
    sessions = [
        FeedbackSession("s1", "q", ["A", "B", "C", "D"], [("A", 1, 1), ("C", 3, 2)]),
        FeedbackSession("s2", "q", ["A", "B", "C", "D"], [("A", 1, 3)]),  # repeated: not merged
        FeedbackSession("s3", "r", ["E", "B"], [("B", 2, 4)]),
    ]
    rows = naive_rows(sessions, texts)
    assert rows["pairs"] == {"anchor": ["q", "q"], "positive": ["tA", "tA"]}
    # C: B was skipped above it (A was selected too, so it is no negative); B: E above it
    assert rows["skip_above"] == {"anchor": ["q", "r"], "positive": ["tC", "tB"], "negative": ["tB", "tE"]}


def test_a_dataset_with_fewer_than_two_rows_is_left_out():
    rows = naive_rows([FeedbackSession("s1", "q", ["A", "B"], [("B", 2, 1)])], {"A": "a", "B": "b"})
    assert rows == {}
