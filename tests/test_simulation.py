"""The shared click simulator (tests, demo and benchmarks use it): known behaviour on a fixed ranking."""

from __future__ import annotations

import random

from embedloop import EmbedLoop
from embedloop.simulation import ClickModel, simulate_search

SHOWN = [f"d{i}" for i in range(1, 11)]


def test_perfect_user_picks_exactly_the_relevant_results():
    assert ClickModel.perfect().clicks(SHOWN, {"d3", "d7", "x"}, random.Random(1)) == ["d3", "d7"]


def test_position_bias_makes_low_ranks_rarer():
    model = ClickModel(theta=1.0, p_relevant=1.0, p_irrelevant=0.0)
    rng = random.Random(5)
    counts = {"d1": 0, "d10": 0}
    for _ in range(4000):
        for item in model.clicks(SHOWN, {"d1", "d10"}, rng):
            counts[item] += 1
    assert 3900 <= counts["d1"] <= 4000  # rank 1 is always examined
    assert 300 <= counts["d10"] <= 520  # rank 10: 1/10 of the time


def test_noise_and_irrelevant_picks_and_uniform_control():
    rng = random.Random(3)
    irrelevant = ClickModel(theta=0.0, p_relevant=0.0, p_irrelevant=1.0).clicks(SHOWN[:3], set(), rng)
    assert irrelevant == SHOWN[:3]
    uniform = ClickModel(uniform_random=True).clicks(SHOWN, set(), rng)
    assert len(uniform) == 1 and uniform[0] in SHOWN
    assert ClickModel(uniform_random=True).clicks([], set(), rng) == []


def test_sessions_go_through_the_public_api(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    rng = random.Random(0)
    shown = simulate_search(fake_loop, "Apple Inc. Common Stock", {"AAPL"}, ClickModel.perfect(), rng, k=3)
    assert shown.picks == ["AAPL"] and not shown.reported
    unseen = simulate_search(fake_loop, "Tesla", {"QQQ"}, ClickModel.perfect(), rng, k=2, unseen="append")
    assert unseen.picks == [] and unseen.reported == ["QQQ"]
    skipped = simulate_search(fake_loop, "Tesla", {"QQQ"}, ClickModel.perfect(), rng, k=2)
    assert skipped.reported == []
    stats = fake_loop.feedback_stats()
    assert stats["selections"] == 2 and stats["searches"] == 4  # 3 searches + 1 reported from elsewhere
