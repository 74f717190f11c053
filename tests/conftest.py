"""Shared fixtures: each test gets its own storage path; the real MiniLM loads once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from embedloop import EmbedLoop, Settings  # noqa: E402
from embedloop.models.encoder import HashingEncoder  # noqa: E402

MINILM = "all-MiniLM-L6-v2"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs with its own LEARNING_STORAGE_PATH and no stray embedloop variables."""
    for name in list(os.environ):
        if name.startswith("EMBEDLOOP_") or name in ("EMBEDDING_MODEL", "ADAPTIVE_LEARNING_DB"):
            monkeypatch.delenv(name, raising=False)
    storage = tmp_path / "storage"
    monkeypatch.setenv("LEARNING_STORAGE_PATH", str(storage))
    return storage


@pytest.fixture
def storage(_isolated_storage: Path) -> Path:
    return _isolated_storage


@pytest.fixture
def settings(storage: Path) -> Settings:
    return Settings(storage_path=storage, embedding_model=MINILM, show_progress=False)


@pytest.fixture
def fake_loop(settings: Settings):
    """A loop with the deterministic hashing encoder: exact, model-free rankings."""
    with EmbedLoop(settings, encoder=HashingEncoder()) as loop:
        yield loop


@pytest.fixture
def minilm_loop(settings: Settings):
    """A loop with the real MiniLM."""
    with EmbedLoop(settings) as loop:
        yield loop


FINANCE_ITEMS = [
    {"id": "AAPL", "text": "AAPL - Apple Inc. Common Stock"},
    {"id": "APLE", "text": "APLE - Apple Hospitality REIT, Inc. Common Shares"},
    {"id": "MSFT", "text": "MSFT - Microsoft Corporation Common Stock"},
    {"id": "GOOGL", "text": "GOOGL - Alphabet Inc. Class A Common Stock"},
    {"id": "AMZN", "text": "AMZN - Amazon.com, Inc. Common Stock"},
    {"id": "TSLA", "text": "TSLA - Tesla, Inc. Common Stock"},
    {"id": "SPY", "text": "SPY - SPDR S&P 500 ETF Trust"},
    {"id": "QQQ", "text": "QQQ - Invesco QQQ Trust, Series 1"},
]


@pytest.fixture
def finance_items() -> list[dict[str, str]]:
    return [dict(i) for i in FINANCE_ITEMS]
