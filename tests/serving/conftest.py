"""Fixtures for the real-server tests: start servers, a catalog indexed with the real MiniLM."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _servers import ServerProcess, child_env, embedloop_script

from embedloop import EmbedLoop


@pytest.fixture
def start_process(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """Start ``command`` as a server process; every one still running is terminated after the test."""
    started: list[ServerProcess] = []

    def start(command: list[str], **env: str) -> ServerProcess:
        server = ServerProcess(command, child_env(**env), tmp_path / f"server{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.terminate()


@pytest.fixture
def start_server(start_process):  # type: ignore[no-untyped-def]
    """Start ``python -m <module> ARGS...``."""
    return lambda module, args, **env: start_process([sys.executable, "-m", module, *args], **env)


@pytest.fixture
def start_cli(start_process):  # type: ignore[no-untyped-def]
    """Start the installed ``embedloop ARGS...`` console script."""
    return lambda args, **env: start_process([str(embedloop_script()), *args], **env)


@pytest.fixture
def minilm_catalog(minilm_loop: EmbedLoop, finance_items, storage: Path) -> Path:
    """The finance catalog indexed with the real MiniLM in ``storage`` (servers then open it)."""
    minilm_loop.add_items(finance_items)
    return storage
