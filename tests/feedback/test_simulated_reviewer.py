"""The benchmark's simulated reviewer, on the fake encoder (no training)."""

from __future__ import annotations

import random

import pytest

from embedloop import EmbedLoop
from embedloop.benchmarks.review import (
    LabelChanges,
    answer_queue,
    answer_random,
    gate_verdicts,
    pool_seeds,
    run_review_arms,
    simulated_answer,
    summarise,
)

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


def test_review_arms_runs_only_the_strategies_asked_for(settings, finance_items):
    with EmbedLoop(settings) as loop:  # the real small model: each arm reopens the copied storage
        loop.add_items(finance_items)
        for query in QRELS:
            loop.search(query, k=5)
    queries = {f"q{i}": q for i, q in enumerate(QRELS)}
    relevant = {f"q{i}": QRELS[q] for i, q in enumerate(QRELS)}
    out = run_review_arms(
        settings, settings.storage_path, queries, relevant, [2], lambda lp: {"ndcg@10": 0.5}, 1, strategies=("queue",)
    )
    assert set(out["arms"]) == {"clicks", "queue@2"}
    assert out["arms"]["queue@2"]["answers"]["questions"] == 2
    assert out["summary"] == {"clicks_ndcg@10": 0.5}  # no random arm: no comparison is claimed
    with EmbedLoop(settings) as loop:  # every arm worked on a copy: the original storage has no judgments
        assert loop.judgments() == []


def test_summarise_gain_per_answer():
    arms = {
        "clicks": {"candidate_dev": {"ndcg@10": 0.5}},
        "queue@10": {
            "candidate_dev": {"ndcg@10": 0.53},
            "answers": {"questions": 10, "questions_changing_labels": 6},
        },
        "random@10": {"candidate_dev": {"ndcg@10": 0.51}},
    }
    out = summarise(arms, [10])["10"]
    assert out["queue_beats_random"] and out["ratio"] == 3.0
    assert out["queue_label_change_share"] == 0.6 and "random_label_change_share" not in out


def test_gate_verdicts_check_the_precheck_against_dev():
    def arm(status, source, active, cand, dev):
        metrics = {"active": {"triplet_accuracy": active}, "candidate": {"triplet_accuracy": cand}}
        return {
            "status": status,
            "holdout_source": source,
            "holdout_metrics": metrics,
            "candidate_dev": {"ndcg@10": dev},
        }

    arms = {
        "clicks": arm("rejected", "clicks", 0.80, 0.79, 0.52),  # rejected a dev gain: wrong
        "queue@50": arm("trial", "judgments", 0.60, 0.70, 0.53),  # passed a dev gain: right
        "random@50": arm("rejected", "judgments", 0.65, 0.60, 0.49),  # rejected a dev loss: right
        "queue@25": {"status": "skipped", "holdout_metrics": {}, "candidate_dev": {"ndcg@10": 0.5}},
    }
    out = gate_verdicts(arms, {"ndcg@10": 0.50})
    assert set(out["arms"]) == {"clicks", "queue@50", "random@50"}
    assert out["arms"]["clicks"] == {
        "source": "clicks",
        "verdict": "reject",
        "holdout_accuracy_delta": -0.01,
        "dev_delta": 0.02,
        "correct": False,
        "sign_agrees": False,
    }
    assert out["by_source"] == {
        "clicks": {"arms": 1, "correct": 0, "sign_agrees": 0},
        "judgments": {"arms": 2, "correct": 2, "sign_agrees": 2},
    }


def test_label_changes_count_new_positives_and_overruled_clicks(fake_loop: EmbedLoop, finance_items):
    fake_loop.add_items(finance_items)
    fake_loop.record_feedback("Apple stock", shown=["APLE", "AAPL", "MSFT"], selected=["APLE"])
    fake_loop.record_feedback("tesla", shown=["TSLA", "SPY"], selected=["TSLA"])
    changes = LabelChanges(fake_loop.store.feedback_sessions())
    changes.add("apple STOCK", selected=["AAPL"], rejected=["APLE", "MSFT"])  # a new positive, a click overruled
    changes.add("tesla", selected=["TSLA"], rejected=["SPY"])  # confirms the click: no change
    changes.add("microsoft", selected=[], rejected=["MSFT"])  # never clicked, judged irrelevant: no change
    assert changes.report() == {"questions_changing_labels": 1, "new_positives": 1, "overruled_clicks": 1}


def review_run(clicks: float, queue: float, rand: float, changing: int) -> dict:
    arms = {
        "clicks": {"candidate_dev": {"ndcg@10": clicks}},
        "queue@10": {
            "candidate_dev": {"ndcg@10": queue},
            "answers": {"questions": 10, "relevant_found": 4, "questions_changing_labels": changing},
        },
        "random@10": {
            "candidate_dev": {"ndcg@10": rand},
            "answers": {"questions": 10, "relevant_found": 7, "questions_changing_labels": 3},
        },
    }
    gate = {"by_source": {"clicks": {"arms": 3, "correct": 1, "sign_agrees": 2}}}
    return {"summary": summarise(arms, [10]), "arms": arms, "gate": gate}


def test_pool_seeds_pairs_the_arms_within_each_seed():
    runs = [review_run(0.50, 0.53, 0.51, 6), review_run(0.60, 0.61, 0.62, 4)]
    out = pool_seeds(runs)
    ten = out["budgets"]["10"]
    assert out["seeds"] == 2 and ten["seeds"] == 2
    assert ten["queue_minus_clicks"]["mean"] == pytest.approx(0.02)
    assert ten["random_minus_clicks"]["mean"] == pytest.approx(0.015)
    assert ten["queue_minus_random"] == {"mean": pytest.approx(0.005), "se": pytest.approx(0.015)}
    assert ten["queue_wins"] == 1 and ten["gain_per_answer_ratio"] == pytest.approx(1.333, abs=1e-3)
    assert ten["queue"] == {"questions": 20, "relevant_found": 8, "label_change_share": 0.5}
    assert ten["random"]["label_change_share"] == 0.3
    assert out["gate"] == {"clicks": {"arms": 6, "correct": 2, "sign_agrees": 4}}
