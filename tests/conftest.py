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
        if name.startswith("EMBEDLOOP_TEST_") or name == "EMBEDLOOP_REQUIRE_PG":
            continue
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


# ---------------------------------------------------------------- databases
def _pg_server_url() -> str | None:
    return os.environ.get("EMBEDLOOP_TEST_PG_URL") or None


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh, empty database: a SQLite file, then a new database on the test PostgreSQL server.

    The server comes from scripts/start_postgres.sh (``make test`` starts it and sets
    EMBEDLOOP_TEST_PG_URL). Without it the PostgreSQL cases are skipped, unless
    EMBEDLOOP_REQUIRE_PG=1 (CI), where they fail.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'feedback.db'}"
        return
    server = _pg_server_url()
    if server is None:
        if os.environ.get("EMBEDLOOP_REQUIRE_PG") == "1":
            pytest.fail("EMBEDLOOP_TEST_PG_URL is not set; run scripts/start_postgres.sh")
        pytest.skip("no PostgreSQL server (run scripts/start_postgres.sh and set EMBEDLOOP_TEST_PG_URL)")
    import uuid

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = f"embedloop_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
