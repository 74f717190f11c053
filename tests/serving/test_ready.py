"""The scheduler's first check waits for the server to be ready, and says so (issue 12, item 9)."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

from embedloop.serving.common import start_scheduler_when_ready, when_ready


def test_callback_runs_only_once_the_server_has_started():
    server = SimpleNamespace(started=False, should_exit=False)
    called = threading.Event()
    thread = when_ready(server, called.set, poll_seconds=0.01)
    time.sleep(0.1)
    assert not called.is_set()
    server.started = True
    assert called.wait(2.0)
    thread.join(2.0)


def test_no_callback_when_the_server_stops_before_ready():
    server = SimpleNamespace(started=False, should_exit=False)
    called = threading.Event()
    thread = when_ready(server, called.set, poll_seconds=0.01)
    server.should_exit = True
    thread.join(2.0)
    assert not thread.is_alive() and not called.is_set()


def test_scheduler_start_is_logged(caplog):
    started = []
    scheduler = SimpleNamespace(start=lambda: started.append(True))
    with caplog.at_level(logging.INFO, logger="embedloop"):
        start_scheduler_when_ready(scheduler, "http://127.0.0.1:8000")()
    assert started == [True]
    assert any("Server ready at http://127.0.0.1:8000" in r.getMessage() for r in caplog.records)
