"""Fixtures for the real-server tests: start servers, a catalog indexed with the real MiniLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _servers import ServerProcess, child_env

from embedloop import EmbedLoop


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    started: list[ServerProcess] = []

    def start(module: str, args: list[str], **env: str) -> ServerProcess:
        server = ServerProcess(module, args, child_env(**env), tmp_path / f"server{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.terminate()


@pytest.fixture
def minilm_catalog(minilm_loop: EmbedLoop, finance_items, storage: Path) -> Path:
    """The finance catalog indexed with the real MiniLM in ``storage`` (servers then open it)."""
    minilm_loop.add_items(finance_items)
    return storage
