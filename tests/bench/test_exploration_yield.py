"""bench/exploration_yield.py: what insertion brings in from outside the top 10, on synthetic rankings (no model)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from embedloop.simulation import ClickModel

ROOT = Path(__file__).resolve().parents[2]


def load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_exploration_yield", ROOT / "bench" / "exploration_yield.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# every query's one relevant document sits at rank 15 of a 50-deep ranking: only insertion can show it
RANKED = {f"q{n}": [f"q{n}-d{r}" for r in range(1, 51)] for n in range(20)}
RELEVANT = {q: {f"{q}-d15"} for q in RANKED}


def test_rank_bands_count_where_relevant_documents_sit() -> None:
    relevant = {"q0": {"q0-d3", "q0-d15", "q0-d40", "elsewhere"}}
    bands = load_script().rank_bands({"q0": RANKED["q0"]}, relevant)
    assert bands == {"1-10": 1, "11-20": 1, "21-50": 1, ">50": 1}


def test_without_exploration_nothing_deep_is_selected() -> None:
    row = load_script().simulate(RANKED, RELEVANT, "off", 0.0, 2000, ClickModel(), seed=1)
    assert row["deep_per_1000"] == 0.0 and row["deep_relevant_per_1000"] == 0.0
    assert row["relevant_per_1000"] == 0.0  # the relevant document is never shown
    assert row["selections_per_1000"] > 0  # only mis-clicks on the irrelevant top 10


def test_insertion_finds_the_deep_relevant_document_at_its_rate() -> None:
    script = load_script()
    # a user who examines everything and picks exactly the relevant: every insertion of d15 is a selection
    row = script.simulate(RANKED, RELEVANT, "insert", 1.0, 4000, ClickModel.perfect(), seed=1)
    # one insertion per search, drawn uniformly from ranks 11-50: d15 is inserted in 1 of 40 searches
    assert 15 <= row["deep_relevant_per_1000"] <= 35
    assert row["deep_precision"] == 1.0
    assert 1 <= row["distinct_deep_relevant_pairs"] <= len(RANKED)
    noisy = script.simulate(RANKED, RELEVANT, "insert", 1.0, 4000, ClickModel(), seed=1)
    assert noisy["deep_precision"] is not None and noisy["deep_precision"] < 1.0  # mis-clicks on inserted results
