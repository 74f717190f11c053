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


def test_questions_only_arms_answer_and_count_without_training(settings, finance_items):
    with EmbedLoop(settings) as loop:
        loop.add_items(finance_items)
        for query in QRELS:
            loop.search(query, k=5)
    queries = {f"q{i}": q for i, q in enumerate(QRELS)}
    relevant = {f"q{i}": QRELS[q] for i, q in enumerate(QRELS)}

    def never(_loop):
        raise AssertionError("a questions-only run scores nothing")

    out = run_review_arms(settings, settings.storage_path, queries, relevant, [2], never, 1, train=False)
    assert set(out["arms"]) == {"clicks", "queue@2", "random@2"}
    assert all("candidate_dev" not in arm and "status" not in arm for arm in out["arms"].values())
    assert out["arms"]["clicks"]["answers"]["training_positives"] == 0  # searches, no selections
    assert out["arms"]["clicks"]["answers"]["training_set"] == {
        "examples": 0,
        "from_judgments": 0,
        "judged_queries_held_out": 0,
    }
    # every judged-relevant item of an unheld query is a training example of its own
    found = out["arms"]["queue@2"]["answers"]
    assert 0 < found["training_set"]["from_judgments"] == found["training_set"]["examples"] <= found["relevant_found"]
    for strategy in ("queue", "random"):
        spent = out["arms"][f"{strategy}@2"]["answers"]
        assert spent["questions"] == 2
        # nothing was clicked or trained: every relevant item found is a new positive on both counts
        assert spent["training_new_positives"] == spent["new_positives"] == spent["relevant_found"] > 0
    assert set(out["summary"]["2"]) == {
        f"{s}_{against}label_change_share" for s in ("queue", "random") for against in ("", "training_")
    }
    with EmbedLoop(settings) as loop:
        assert loop.judgments() == [] and loop.status()["active_version"] == 0


def test_pool_seeds_of_questions_only_runs_counts_answers_alone():
    arms = {
        "clicks": {"answers": {"questions": 0}},
        "queue@10": {"answers": {"questions": 10, "questions_changing_training_labels": 7}},
        "random@10": {"answers": {"questions": 10, "questions_changing_training_labels": 2}},
    }
    from embedloop.benchmarks.review import average_draws, summarise_answers

    run = {"config": {"seed": 1}, "arms": arms, "summary": summarise_answers(arms, [10])}
    ten = pool_seeds([run, {**run, "config": {"seed": 2}}])["budgets"]["10"]
    assert ten["seeds"] == 2 and "queue_minus_random" not in ten
    assert ten["queue"]["training_label_change_share"] == 0.7
    assert ten["random"]["training_label_change_share"] == 0.2
    with pytest.raises(ValueError, match="questions only"):
        average_draws([run, run])


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


def test_label_changes_against_training_labels(fake_loop: EmbedLoop, finance_items):
    """A mis-click training already dropped is no change to it; a relevant click it dropped is a new positive."""
    fake_loop.add_items(finance_items)
    fake_loop.record_feedback("apple stock", shown=["APLE", "AAPL", "MSFT"], selected=["APLE", "AAPL"])
    trained = {"apple stock": {"AAPL"}}  # training kept AAPL; APLE's click was dropped (say, by the click model)
    changes = LabelChanges(fake_loop.store.feedback_sessions(), trained)
    changes.add("Apple Stock", selected=[], rejected=["APLE", "MSFT"])  # overrules a click, not a training label
    changes.add("apple stock", selected=["AAPL", "APLE"], rejected=["MSFT"])  # APLE back as a training positive
    assert changes.report() == {
        "questions_changing_labels": 1,
        "new_positives": 0,
        "overruled_clicks": 1,
        "questions_changing_training_labels": 1,
        "training_new_positives": 1,
        "training_overruled_clicks": 0,
    }


def test_training_positives_are_the_next_cycles_positives(fake_loop: EmbedLoop, finance_items):
    from embedloop.benchmarks.review import next_examples, training_positives
    from embedloop.training.cycle import next_training_examples

    fake_loop.add_items(finance_items)
    for query, picked in [("apple stock", "AAPL"), ("tesla", "TSLA"), ("microsoft", "MSFT"), ("alphabet", "GOOGL")]:
        fake_loop.record_feedback(query, shown=[picked, "SPY"], selected=[picked])
    examples, _ = next_training_examples(fake_loop.services())
    trained = training_positives(next_examples(fake_loop))
    assert trained == {ex.query.lower(): {ex.positive} for ex in examples}
    assert sum(len(ids) for ids in trained.values()) == len(examples) > 0


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


def test_pool_seeds_counts_training_label_changes_where_runs_have_them():
    old, new = review_run(0.50, 0.53, 0.51, 6), review_run(0.60, 0.61, 0.62, 4)
    for arm, changing, fresh in (("queue@10", 2, 1), ("random@10", 1, 1)):
        new["arms"][arm]["answers"].update(
            questions_changing_training_labels=changing, training_new_positives=fresh, training_overruled_clicks=1
        )
    new["summary"] = summarise(new["arms"], [10])
    assert new["summary"]["10"]["queue_training_label_change_share"] == 0.2
    ten = pool_seeds([old, new])["budgets"]["10"]
    assert ten["queue"]["label_change_share"] == 0.5  # both runs counted against the clicks
    assert ten["queue"]["training_label_change_share"] == 0.2  # only the newer run against training
    assert ten["queue"]["training_new_positives"] == 1 and ten["random"]["training_overruled_clicks"] == 1
