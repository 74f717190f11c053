"""Fixtures for learning-loop tests: the confusable catalog loaded into a MiniLM loop."""

from __future__ import annotations

import pytest
from feedback_sim import CATALOG, cycle_settings

from embedloop import EmbedLoop, Settings


@pytest.fixture
def loop_settings(storage) -> Settings:
    return cycle_settings(storage)


@pytest.fixture
def trained_loop(loop_settings: Settings):
    with EmbedLoop(loop_settings) as loop:
        loop.add_items([{"id": k, "text": v} for k, v in CATALOG.items()])
        yield loop
