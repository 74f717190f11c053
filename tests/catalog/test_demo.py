"""Tests for the packaged demo catalog and its builder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from embedloop.catalog.demo import DEMO_CATALOG_PATH, iter_demo_catalog

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
BUILDER = REPO_ROOT / "scripts" / "build_demo_catalog.py"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return list(iter_demo_catalog())


@pytest.fixture(scope="module")
def by_id(rows: list[dict]) -> dict[str, dict]:
    return {row["id"]: row for row in rows}


def test_file_exists_and_loads(rows: list[dict]) -> None:
    assert DEMO_CATALOG_PATH.is_file()
    assert DEMO_CATALOG_PATH.stat().st_size < 1_000_000
    assert 12_000 < len(rows) < 14_000
    for row in rows:
        assert set(row) == {"id", "text", "metadata"}
        assert row["text"] == f"{row['id']} - {row['metadata']['name']}"
        assert isinstance(row["metadata"]["etf"], bool)
        assert "summary" not in row["metadata"]


def test_sorted_and_unique_ids(rows: list[dict]) -> None:
    ids = [row["id"] for row in rows]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_limit() -> None:
    assert [r["id"] for r in iter_demo_catalog(limit=3)] == [r["id"] for r in list(iter_demo_catalog())[:3]]
    assert list(iter_demo_catalog(limit=0)) == []
    with pytest.raises(ValueError):
        list(iter_demo_catalog(limit=-1))


def test_aapl(by_id: dict[str, dict]) -> None:
    aapl = by_id["AAPL"]
    assert aapl["text"] == "AAPL - Apple Inc. Common Stock"
    assert aapl["metadata"]["exchange"] == "Nasdaq Global Select"
    assert aapl["metadata"]["etf"] is False


def test_aple(by_id: dict[str, dict]) -> None:
    aple = by_id["APLE"]
    assert aple["text"].startswith("APLE - Apple Hospitality REIT")
    assert aple["metadata"]["exchange"] == "NYSE"


def test_no_test_issues(by_id: dict[str, dict]) -> None:
    for symbol in ("ZVZZT", "ZXYZ.A", "ATEST", "NTEST", "ZXIET"):
        assert symbol not in by_id
    assert not any(row["id"].startswith("File Creation Time") for row in by_id.values())


def test_texts_are_clean(rows: list[dict]) -> None:
    for row in rows:
        name = row["metadata"]["name"]
        assert " - " not in name
        assert name == " ".join(name.split())


def test_enrichment(by_id: dict[str, dict], rows: list[dict]) -> None:
    assert sum("sector" in row["metadata"] for row in rows) > 500
    assert sum("category" in row["metadata"] for row in rows) > 500
    # ACT symbols are translated to FinanceDatabase's form for the join.
    assert by_id["BRK.B"]["metadata"].get("sector") == "Financials"
    assert by_id["ABR$D"]["metadata"].get("sector") == "Real Estate"
    assert by_id["SPY"]["metadata"]["etf"] is True
    assert "family" in by_id["SPY"]["metadata"]


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared source data not available")
def test_builder_is_reproducible(tmp_path: Path) -> None:
    out = tmp_path / "catalog.jsonl.gz"
    subprocess.run(
        [
            sys.executable,
            str(BUILDER),
            "--data-dir",
            str(SHARED_DATA),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == DEMO_CATALOG_PATH.read_bytes()
