"""A small confusable catalog and simulated users for learning-loop tests."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from embedloop import EmbedLoop, Settings
from embedloop.simulation import ClickModel, simulate_search
from embedloop.types import FeedbackSession


def cycle_settings(storage: Path, **changes: Any) -> Settings:
    """The learning-loop tests' settings (``bench/spec_example_seeds.py`` reruns the spec's example with them).

    The tests check what one cycle learns and how the pre-check alone decides; trials: test_trials*.py.
    """
    defaults: dict[str, Any] = {
        "embedding_model": "all-MiniLM-L6-v2",
        "fine_tune_threshold": 20,
        "min_holdout_queries": 3,
        "learning_rate": 1e-4,
        "epochs": 3,
        "train_batch_size": 16,
        "show_progress": False,
        "trials": False,
    }
    return Settings(storage_path=storage, **{**defaults, **changes})


CATALOG = {
    "AAPL": "AAPL - Apple Inc. Common Stock",
    "APLE": "APLE - Apple Hospitality REIT, Inc. Common Shares",
    "AAPU": "AAPU - Direxion Daily AAPL Bull 2X Shares",
    "AAPD": "AAPD - Direxion Daily AAPL Bear 1X Shares",
    "APPN": "APPN - Appian Corporation Class A Common Stock",
    "APLD": "APLD - Applied Digital Corporation Common Stock",
    "AMAT": "AMAT - Applied Materials, Inc. Common Stock",
    "MLP": "MLP - Maui Land & Pineapple Company, Inc. Common Stock",
    "APPF": "APPF - AppFolio, Inc. Class A Common Stock",
    "MSFT": "MSFT - Microsoft Corporation Common Stock",
    "GOOGL": "GOOGL - Alphabet Inc. Class A Common Stock",
    "AMZN": "AMZN - Amazon.com, Inc. Common Stock",
    "TSLA": "TSLA - Tesla, Inc. Common Stock",
    "NVDA": "NVDA - NVIDIA Corporation Common Stock",
    "META": "META - Meta Platforms, Inc. Class A Common Stock",
    "SPY": "SPY - SPDR S&P 500 ETF Trust",
    "QQQ": "QQQ - Invesco QQQ Trust, Series 1",
    "HST": "HST - Host Hotels & Resorts, Inc. Common Stock",
    "BRK.B": "BRK.B - Berkshire Hathaway Inc. Class B",
    "JPM": "JPM - JPMorgan Chase & Co. Common Stock",
}

#: What users mean by each phrasing (the target they select).
INTENTS = {
    "AAPL": [
        "cupertino iphone maker shares",
        "tim cook apple stock",
        "apple computer company equity",
        "macbook maker stock",
        "cupertino company shares",
        "iphone company stock",
        "apple stock price",
        "buy apple shares",
        "ipad maker equity",
        "apple inc stock quote",
    ],
    "AAPU": [
        "leveraged apple etf",
        "2x long apple fund",
        "apple bull 2x etf",
        "double apple exposure etf",
        "apple daily bull shares",
        "long apple leveraged shares",
    ],
    "APLE": ["apple hotel reit", "hospitality reit apple", "apple hospitality shares", "hotel reit named apple"],
    "MSFT": ["windows maker stock", "microsoft shares", "xbox company stock"],
    "NVDA": ["gpu chipmaker stock", "nvidia shares", "graphics card maker equity"],
    "SPY": ["s&p 500 etf", "spdr index fund", "broad market index etf"],
    "TSLA": ["electric car maker stock", "tesla shares", "ev company equity"],
}

#: Phrasings never used in training that the base model gets wrong (checked in the test).
HELD_OUT = {"apple 2x leveraged etf": "AAPU", "tim cook company shares": "AAPL"}


def simulate(loop: EmbedLoop, *, rounds: int = 2, wrong: bool = False, seed: int = 0, k: int = 5) -> int:
    """Users search each phrasing and pick the intended item (or a random wrong one)."""
    rng = random.Random(seed)
    clicks, click_rng = ClickModel.perfect(), random.Random(seed)  # the shared simulator (embedloop.simulation)
    ids = list(CATALOG)
    events = 0
    for _ in range(rounds):
        for target, phrasings in INTENTS.items():
            for q in phrasings:
                pick = rng.choice([i for i in ids if i != target]) if wrong else target
                simulate_search(loop, q, {pick}, clicks, click_rng, k=k, unseen="replace_last")
                events += 1
    return events


def rank_of(loop: EmbedLoop, query: str, item: str) -> int:
    hits = loop.search(query, k=len(CATALOG)).hits
    return next(h.rank for h in hits if h.item_id == item)


def session(query: str, shown: list[str], selected: list[str], seq: int = 1) -> FeedbackSession:
    """A stored session as ``Store.feedback_sessions()`` returns it: ``selected`` picked at their shown ranks."""
    return FeedbackSession(
        search_id=f"s{seq}",
        query=query,
        shown=shown,
        selected=[(i, shown.index(i) + 1, seq) for i in selected],
        last_seq=seq,
    )
