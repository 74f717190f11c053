"""Fixtures for learning-loop tests: the confusable catalog loaded into a MiniLM loop."""

from __future__ import annotations

import pytest
from feedback_sim import CATALOG

from embedloop import EmbedLoop, Settings


@pytest.fixture
def loop_settings(storage) -> Settings:
    return Settings(
        storage_path=storage,
        embedding_model="all-MiniLM-L6-v2",
        fine_tune_threshold=20,
        min_holdout_queries=3,
        learning_rate=1e-4,
        epochs=3,
        train_batch_size=16,
        show_progress=False,
        # These tests check what one cycle learns and how the pre-check alone decides; trials: test_trials*.py.
        trials=False,
    )


@pytest.fixture
def trained_loop(loop_settings: Settings):
    with EmbedLoop(loop_settings) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        yield loop
