"""bench/click_model_fit.py: the click model's keep/drop decision checked against the truth (synthetic rankings)."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

from embedloop.simulation import ClickModel

ROOT = Path(__file__).resolve().parents[2]


def load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_click_model_fit", ROOT / "bench" / "click_model_fit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rankings(queries: int = 400, seed: int = 3) -> tuple[dict, dict]:
    """Top-10 lists by score; the one relevant document scores higher on average but is not always first."""
    rng = random.Random(seed)
    ranked, relevant = {}, {}
    for q in range(queries):
        scored = [(rng.gauss(1.0 if i == 0 else 0.0, 0.5), f"q{q}-d{i}") for i in range(10)]
        ranked[f"query {q}"] = [(d, s) for s, d in sorted(scored, reverse=True)]
        relevant[f"query {q}"] = {f"q{q}-d0"}
    return ranked, relevant


def test_auc_counts_ties_half() -> None:
    auc = load_script().auc
    assert auc([0.9, 0.8], [0.1]) == 1.0
    assert auc([0.5], [0.5]) == 0.5
    assert auc([], [0.1]) is None


def test_simulated_log_shows_each_ranking_and_records_ranks() -> None:
    ranked, relevant = rankings(20)
    log = load_script().simulate(ranked, relevant, 200, ClickModel.perfect(), seed=1)
    assert len(log) == 200
    for s in log:
        assert s.shown == [d for d, _s in ranked[s.query]]
        assert s.selected_ids == sorted(relevant[s.query])  # the perfect user picks exactly the relevant one
        assert all(s.shown[rank - 1] == item for item, rank, _seq in s.selected)


def test_scores_separate_mis_clicks_better_than_ranks_under_noise() -> None:
    script = load_script()
    ranked, relevant = rankings()
    log = script.simulate(ranked, relevant, 800, ClickModel(noise=0.5), seed=2)
    by_name = {row["click_model"]: row for row in script.evaluate(ranked, relevant, log, 0.5)}
    rank, scores = by_name["pbm"], by_name["pbm_scores"]
    assert rank["clicked_pairs"] == scores["clicked_pairs"] > rank["relevant_pairs"] > 0
    assert scores["auc"] > rank["auc"] + 0.1
    assert scores["kept_precision"] > rank["kept_precision"]
    assert scores["fit"]["score_prior"] is not None and rank["fit"]["score_prior"] is None
