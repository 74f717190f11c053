"""The benchmark's index cache (benchmarks/quality.py ``index_corpus``): built once, copied after, never half-read."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from embedloop.benchmarks.quality import index_corpus

ITEMS = [
    {"id": "d1", "text": "Statins lower LDL cholesterol."},
    {"id": "d2", "text": "Vitamin D and bone density in older adults."},
    {"id": "d3", "text": "Aspirin after myocardial infarction."},
]


def test_the_cache_is_published_whole_and_replaces_a_half_written_one(
    settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    cache = tmp_path / "cache"
    cache.mkdir()
    with index_corpus(settings, ITEMS, "tiny", cache) as loop:
        assert loop.list_items()["total"] == 3
    (snapshot,) = cache.iterdir()
    assert (snapshot / "READY").is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no staging folder left behind

    # A run stopped mid-copy leaves a folder without READY: it is replaced, not read.
    (snapshot / "READY").unlink()
    with index_corpus(settings, ITEMS, "tiny", cache) as loop:
        assert loop.list_items()["total"] == 3
    assert (snapshot / "READY").is_file()

    caplog.set_level(logging.INFO, logger="embedloop")
    with index_corpus(settings, ITEMS, "tiny", cache) as loop:
        assert [it["id"] for it in loop.list_items()["items"]] == ["d1", "d2", "d3"]
    assert any("copied the cached storage" in r.getMessage() for r in caplog.records)
