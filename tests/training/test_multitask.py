"""Several objectives in one cycle: one dataset and one loss per source (training/multitask.py)."""

from __future__ import annotations

import pytest

from embedloop import Settings
from embedloop.training.examples import TrainingExample
from embedloop.training.multitask import judged_examples, multitask_columns, multitask_losses

TEXTS = {i: f"text of {i}" for i in ("AAPL", "APLE", "MSFT", "TSLA", "SPY")}


def examples() -> list[TrainingExample]:
    return [
        TrainingExample("apple stock", "AAPL", ["APLE", "MSFT"]),
        TrainingExample("tesla", "TSLA", ["SPY"]),
        TrainingExample("ticker AAPL", "", source="domain", positive_text="Apple Inc."),
        TrainingExample("ticker SPY", "", source="domain", positive_text="S&P 500 ETF", negative_texts=["Nasdaq"]),
    ]


def test_judgments_become_examples_with_the_rejected_items_as_negatives():
    judged = judged_examples([("Apple stock", "AAPL", True), ("apple  stock", "APLE", False), ("msft", "MSFT", True)])
    by_item = {e.positive: e for e in judged}
    assert by_item["AAPL"].negatives == ["APLE"] and by_item["AAPL"].source == "judgment"
    assert by_item["MSFT"].negatives == []


def test_each_source_is_its_own_dataset():
    s = Settings(hard_negatives=2)
    judged = judged_examples([("apple stock", "AAPL", True), ("apple stock", "APLE", False), ("spy", "SPY", True)])
    cols = multitask_columns(examples(), TEXTS, s, judged)
    assert set(cols) == {"clicks", "judgments", "judgment_pairs", "domain", "domain_negatives"}
    assert cols["clicks"]["anchor"] == ["apple stock", "tesla"]
    assert cols["clicks"]["negative_2"] == ["text of MSFT", "text of SPY"]  # negatives cycle when too few
    assert cols["judgments"]["negative_1"] == ["text of APLE"] and cols["judgments"]["negative_2"] == ["text of APLE"]
    assert cols["judgment_pairs"] == {"anchor": ["spy"], "positive": ["text of SPY"]}
    # every domain pair is kept (single-task mode drops those without a negative)
    assert cols["domain"]["anchor"] == ["ticker AAPL", "ticker SPY"]
    assert cols["domain_negatives"]["negative_1"] == ["Nasdaq"]
    assert multitask_columns(examples()[:2], TEXTS, s).keys() == {"clicks"}


def test_unknown_dataset_has_no_loss():
    with pytest.raises(ValueError, match="no loss"):
        multitask_losses(["mystery"], object(), Settings())
