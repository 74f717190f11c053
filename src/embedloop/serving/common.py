"""Helpers shared by the HTTP and MCP servers: error bodies, bind checks, uvicorn, options."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from embedloop.errors import ConfigError, EmbedLoopError
from embedloop.settings import Settings, with_stored_model

logger = logging.getLogger(__name__)


def error_body(kind: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error response."""
    return {"error": {"type": kind, "message": message, "field": field, **extra}}


#: Bearer tokens shorter than this are accepted, with a warning: they can be guessed.
MIN_TOKEN_LENGTH = 16


def warn_weak_tokens(settings: Settings) -> list[str]:
    """Log a warning for each configured token shorter than :data:`MIN_TOKEN_LENGTH`; return their names."""
    weak = []
    for name, token in (
        ("EMBEDLOOP_API_TOKEN", settings.api_token),
        ("EMBEDLOOP_FEEDBACK_TOKEN", settings.feedback_token),
    ):
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            logger.warning(
                "%s is %d characters long; use at least %d random characters (e.g. `python -c "
                "'import secrets; print(secrets.token_urlsafe(32))'`).",
                name,
                len(token),
                MIN_TOKEN_LENGTH,
            )
            weak.append(name)
    return weak


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, insecure: bool) -> None:
    """Refuse ``insecure`` anywhere but on a loopback address."""
    if insecure and not is_loopback(host):
        raise ConfigError(
            f"--insecure is allowed only on a loopback address (127.0.0.1, ::1, localhost), got host={host!r}. "
            "Set EMBEDLOOP_API_TOKEN instead to expose the admin endpoints on the network."
        )


def when_ready(server: Any, callback: Callable[[], None], *, poll_seconds: float = 0.05) -> threading.Thread:
    """Call ``callback`` (in a daemon thread) once the uvicorn ``server`` accepts connections.

    Nothing is called if the server stops before it is ready.
    """

    def wait() -> None:
        while not getattr(server, "started", False):
            if getattr(server, "should_exit", False):
                return
            time.sleep(poll_seconds)
        callback()

    thread = threading.Thread(target=wait, name="embedloop-when-ready", daemon=True)
    thread.start()
    return thread


def run_uvicorn(
    app: Any, host: str, port: int, log_level: str = "info", *, on_ready: Callable[[], None] | None = None
) -> None:
    """Serve ``app`` until SIGINT / SIGTERM, then return normally (no re-raised signal).

    ``on_ready`` runs once the server accepts connections (the scheduler starts there).
    """
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level))
    if on_ready is not None:
        when_ready(server, on_ready)
    main = threading.current_thread() is threading.main_thread()
    # uvicorn re-raises the signal it shut down on; swallow SIGTERM so callers can clean up.
    previous = signal.signal(signal.SIGTERM, lambda *_: None) if main else None
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def parse_args(argv: list[str] | None, *, prog: str, description: str, http: bool = False) -> argparse.Namespace:
    """Parse the options of ``python -m embedloop.serving.{http,mcp_server}``.

    ``.settings`` is ``Settings.from_env()`` with ``--storage`` / ``--model`` /
    ``--database`` applied. ``http=True``: the HTTP API's options (port 8000,
    ``--no-scheduler``); otherwise the MCP server's (``--transport``, port 8765,
    ``--with-scheduler``).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--storage", help="storage folder (LEARNING_STORAGE_PATH)")
    parser.add_argument("--model", help="base embedding model (EMBEDDING_MODEL)")
    parser.add_argument("--database", help="database file or URL (ADAPTIVE_LEARNING_DB)")
    if http:
        parser.add_argument("--no-scheduler", action="store_true", help="do not fine-tune automatically")
    else:
        parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
        parser.add_argument("--with-scheduler", action="store_true", help="also fine-tune automatically")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000 if http else 8765)
    parser.add_argument("--insecure", action="store_true", help="no token needed (loopback only)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    overrides = {
        key: value
        for key, value in (
            ("storage_path", args.storage),
            ("embedding_model", args.model),
            ("database_url", args.database),
        )
        if value is not None
    }
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        args.settings = with_stored_model(Settings.from_env(**overrides), explicit=args.model is not None)
    except EmbedLoopError as exc:
        parser.exit(2, f"error: {exc}\n")
    return args


def start_scheduler_when_ready(scheduler: Any, url: str) -> Callable[[], None]:
    """The ``on_ready`` callback that starts ``scheduler`` and says so in the log."""

    def start() -> None:
        logger.info("Server ready at %s; the fine-tuning scheduler starts now (first check now).", url)
        scheduler.start()

    return start
