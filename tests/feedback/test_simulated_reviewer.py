"""The benchmark's simulated reviewer, on the fake encoder (no training)."""

from __future__ import annotations

import random

from embedloop import EmbedLoop
from embedloop.benchmarks.review import answer_queue, answer_random, simulated_answer, summarise

QRELS = {"apple stock": {"AAPL"}, "tesla": {"TSLA"}, "microsoft": {"MSFT"}}


def relevant_of(query: str) -> set[str] | None:
    return QRELS.get(query.lower())


def test_simulated_answer():
    assert simulated_answer(["AAPL", "APLE", "MSFT"], {"AAPL"}) == (["AAPL"], ["APLE", "MSFT"])


def test_queue_and_random_arms_spend_their_budget(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    for query in ["apple stock", "tesla", "microsoft", "unjudged query"]:
        fake_loop.search(query, k=5)
    spent = answer_queue(fake_loop, 2, relevant_of)
    assert spent["questions"] == 2 and spent["judgments"] >= 4
    assert {j["reviewer"] for j in fake_loop.judgments()} == {"simulated"}
    rest = answer_queue(fake_loop, 10, relevant_of)  # only judged (train) queries can be answered
    assert rest["questions"] == 1
    rnd = answer_random(fake_loop, 2, relevant_of, random.Random(1))
    assert rnd["questions"] == 2 and rnd["judgments"] == 10


def test_summarise_gain_per_answer():
    arms = {
        "clicks": {"candidate_dev": {"ndcg@10": 0.5}},
        "queue@10": {"candidate_dev": {"ndcg@10": 0.53}},
        "random@10": {"candidate_dev": {"ndcg@10": 0.51}},
    }
    out = summarise(arms, [10])["10"]
    assert out["queue_beats_random"] and out["ratio"] == 3.0
