"""The oracle's judged pairs (benchmarks/quality.py): drawn per query, never twice, optionally within a ranking."""

from __future__ import annotations

from embedloop.benchmarks.quality import judged_pairs, within_ranking

RELEVANT = {"q1": {"a", "b", "c"}, "q2": {"d"}, "q3": {"e", "f"}}


def test_judged_pairs_draw_each_pair_at_most_once_and_are_seeded():
    pairs = judged_pairs(RELEVANT, 4, rng_seed=7)
    assert len(pairs) == len(set(pairs)) == 4
    assert all(doc in RELEVANT[q] for q, doc in pairs)
    assert pairs == judged_pairs(RELEVANT, 4, rng_seed=7)
    everything = judged_pairs(RELEVANT, 100, rng_seed=1)  # the budget is capped at the judged pairs
    assert sorted(everything) == sorted((q, d) for q, docs in RELEVANT.items() for d in docs)


def test_within_ranking_keeps_what_the_ranking_shows():
    ranked = {"q1": ["x", "b", "a"], "q2": ["y", "z"], "q3": ["f"]}
    assert within_ranking(RELEVANT, ranked) == {"q1": {"a", "b"}, "q3": {"f"}}
    pairs = judged_pairs(within_ranking(RELEVANT, ranked), 10, rng_seed=3)
    assert sorted(pairs) == [("q1", "a"), ("q1", "b"), ("q3", "f")]
