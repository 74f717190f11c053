"""Exploration in the shown list: what is shown, and the propensities (checked against frequencies)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from embedloop.search.exploration import explore, position_probabilities

RANKED = [f"d{r}" for r in range(1, 51)]


def test_off_shows_the_top_k_unchanged_with_propensity_one():
    out = explore(RANKED, 10, mode="off", rng=random.Random(0))
    assert out.shown == RANKED[:10]
    assert out.propensity == [1.0] * 10
    assert out.original_rank == list(range(1, 11))
    assert out.applied == ()


@pytest.mark.parametrize("mode", ["fairpairs", "insert", "both"])
def test_propensities_match_empirical_frequencies(mode: str):
    """Over many seeded draws, the frequency of (ranker's rank, shown position) equals the logged propensity."""
    rng = random.Random(7)
    draws, rate = 20_000, 0.4
    counts: Counter = Counter()
    logged: dict = {}
    for _ in range(draws):
        out = explore(RANKED, 10, mode=mode, rate=rate, rng=rng)
        assert len(out.shown) == 10 and len(set(out.shown)) == 10
        for position, (rank, p) in enumerate(zip(out.original_rank, out.propensity, strict=True), start=1):
            assert out.shown[position - 1] == RANKED[rank - 1]
            counts[(rank, position)] += 1
            assert logged.setdefault((rank, position), p) == pytest.approx(p)  # depends only on (rank, position)
    for (rank, position), n in counts.items():
        assert n / draws == pytest.approx(logged[(rank, position)], abs=0.012), (rank, position)
    if mode != "fairpairs":
        deep = [k for k in counts if k[0] > 10]
        assert deep and all(11 <= rank <= 50 for rank, _ in deep)
        # one particular deep result at one particular slot: rate / (40 candidates x 10 slots)
        assert logged[deep[0]] == pytest.approx(rate / 400)


def test_fairpairs_marginals_sum_to_one_and_rank_one_moves_at_most_one_place():
    for rank in range(1, 11):
        probs = position_probabilities(rank, 10, mode="fairpairs", rate=1.0)
        assert sum(probs.values()) == pytest.approx(1.0)
        assert set(probs) <= {rank - 1, rank, rank + 1}
    assert position_probabilities(1, 10, mode="fairpairs", rate=1.0) == {1: 0.75, 2: 0.25}


def test_insert_leaves_the_list_alone_when_there_is_nothing_deep():
    out = explore(RANKED[:10], 10, mode="insert", rate=1.0, rng=random.Random(1))
    assert out.shown == RANKED[:10]
    assert out.propensity == [1.0] * 10


def test_seeded_rng_is_reproducible_and_rate_zero_is_off():
    a = explore(RANKED, 10, mode="both", rate=0.5, rng=random.Random(3))
    b = explore(RANKED, 10, mode="both", rate=0.5, rng=random.Random(3))
    assert a == b
    assert explore(RANKED, 10, mode="both", rate=0.0, rng=random.Random(3)).shown == RANKED[:10]


def test_fewer_results_than_k_and_bad_arguments():
    out = explore(RANKED[:3], 10, mode="fairpairs", rate=1.0, rng=random.Random(0))
    assert sorted(out.shown) == sorted(RANKED[:3])
    with pytest.raises(ValueError, match="mode"):
        explore(RANKED, 10, mode="shuffle")
    with pytest.raises(ValueError, match="rate"):
        explore(RANKED, 10, mode="insert", rate=1.5)
