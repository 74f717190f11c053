"""The quality benchmark's judge report: verdicts against dev changes, with the change's paired standard error."""

from __future__ import annotations

import random

import pytest

from embedloop.benchmarks.quality import PER_QUERY, judge_report, paired_change, score_run


def dev(per_query: dict[str, float]) -> dict[str, object]:
    return {"ndcg@10": sum(per_query.values()) / len(per_query), PER_QUERY: per_query}


def cycle(n: int, candidate: dict[str, object], active_after: dict[str, object], verdict: str) -> dict[str, object]:
    return {
        "round": n,
        "version": n,
        "status": "trial",
        "final_status": verdict,
        "candidate_dev": candidate,
        "dev": active_after,
    }


def test_score_run_per_query_values_average_to_the_mean() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}  # q3 has nothing relevant: not scored
    out = score_run({"q1": ["a", "x"], "q2": ["x", "b"]}, qrels, per_query=True)
    assert set(out[PER_QUERY]) == {"q1", "q2"}
    assert out[PER_QUERY]["q1"] == 1.0
    assert sum(out[PER_QUERY].values()) / 2 == pytest.approx(out["ndcg@10"], abs=1e-6)
    assert PER_QUERY not in score_run({"q1": ["a"]}, qrels)


def test_a_consistent_change_is_resolved_and_a_noisy_one_is_not() -> None:
    rng = random.Random(0)
    queries = [f"q{i}" for i in range(200)]
    base = dev({q: rng.random() for q in queries})
    base_values = base[PER_QUERY]
    assert isinstance(base_values, dict)
    # every query a little better: a small but certain gain
    better = dev({q: min(1.0, v + 0.02) for q, v in base_values.items()})
    # large per-query swings that almost cancel: the mean moves by more than the tie band, the sign is unknown
    noisy = dev({q: min(1.0, max(0.0, v + rng.choice((-0.3, 0.3)))) for q, v in base_values.items()})
    se_better, paired = paired_change(better, base)
    se_noisy, _ = paired_change(noisy, base)
    assert paired == 200
    assert se_better is not None and se_noisy is not None and se_better < se_noisy

    report = judge_report(base, [cycle(1, better, better, "promoted"), cycle(2, noisy, better, "promoted")])
    first, second = report["candidates"]
    assert first["resolved"] and first["right"]
    assert abs(second["dev_change"]) > 0.003  # outside the tie band, so it counts in the plain accuracy ...
    assert not second["resolved"]  # ... but the dev split cannot tell its sign
    assert report["resolved"] == 1
    assert report["accuracy_resolved"] == 1.0


def test_rival_is_the_model_active_before_each_cycle() -> None:
    queries = [f"q{i}" for i in range(50)]
    base = dev({q: 0.5 for q in queries})
    up = dev({q: 0.6 + 0.001 * i for i, q in enumerate(queries)})
    down = dev({q: 0.55 + 0.001 * i for i, q in enumerate(queries)})
    # cycle 1 promoted (right), cycle 2's candidate is worse than cycle 1's model and was rejected (right)
    report = judge_report(base, [cycle(1, up, up, "promoted"), cycle(2, down, up, "rejected")])
    rows = report["candidates"]
    assert [r["right"] for r in rows] == [True, True]
    assert rows[1]["dev_change"] == pytest.approx(-0.05, abs=1e-4)
    assert report["accuracy"] == report["accuracy_resolved"] == 1.0


def test_results_without_per_query_values_are_never_resolved() -> None:
    base = {"ndcg@10": 0.5}
    report = judge_report(base, [cycle(1, {"ndcg@10": 0.6}, {"ndcg@10": 0.6}, "promoted")])
    row = report["candidates"][0]
    assert row["right"] and not row["resolved"] and row["dev_change_se"] is None
    assert report["accuracy_resolved"] is None
