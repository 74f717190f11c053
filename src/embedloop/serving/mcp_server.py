"""MCP server (official ``mcp`` SDK 2.x, ``MCPServer``) over one :class:`~embedloop.EmbedLoop`.

Tools: one per operation of :data:`embedloop.operations.OPERATIONS` (search,
feedback, status, fine-tuning, evaluation, versions, trials, runs, feedback
stats and export, the review queue) — the skills of
:class:`~embedloop.skills.Agent2EmbeddingSkill`, with the argument models,
names and descriptions of :data:`~embedloop.skills.tools.TOOL_DEFINITIONS`.
An embedloop error becomes a tool error (``isError``) whose text names the
error and the field.

Transports: stdio (an agent launches the server) and streamable HTTP at
``/mcp``. Over HTTP every request needs ``Authorization: Bearer
<EMBEDLOOP_API_TOKEN>``; without a token the server starts only with
``insecure=True`` on a loopback address.

    python -m embedloop.serving.mcp_server --storage ./data --model all-MiniLM-L6-v2
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import ToolAnnotations
from pydantic import ConfigDict

import embedloop
from embedloop.errors import ConfigError, EmbedLoopError, InvalidInputError
from embedloop.loop import EmbedLoop
from embedloop.operations import OPERATIONS, Operation
from embedloop.scheduler import FineTuneScheduler
from embedloop.serving.common import (
    check_bind,
    error_body,
    parse_args,
    run_uvicorn,
    start_scheduler_when_ready,
    warn_weak_tokens,
)
from embedloop.serving.limits import BodySizeLimit
from embedloop.settings import Settings
from embedloop.skills.agent import Agent2EmbeddingSkill

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Semantic search over a catalog that improves from feedback. Call search, then report the result the "
    "user picks with record_selection (or log outside searches with record_feedback). "
    "check_fine_tuning_status tells whether enough feedback has accumulated; fine_tune_embeddings trains, "
    "evaluates and promotes a better model; rollback_model undoes a promotion. get_review_queue lists "
    "questions about ambiguous results: ask the user and pass the answer to answer_review."
)


def tool_error(exc: EmbedLoopError) -> ToolError:
    """The tool error an agent sees for ``exc``: type, field and the message with its fix."""
    field = getattr(exc, "field", None)
    where = f" (field {field!r})" if field else ""
    return ToolError(f"{type(exc).__name__}{where}: {exc}")


#: Behaviour hints per operation, as MCP clients read them.
def _annotations(op: Operation) -> ToolAnnotations:
    hints: dict[str, bool] = {"open_world_hint": False, "read_only_hint": op.read_only}
    if not op.read_only:
        hints |= {"destructive_hint": op.destructive, "idempotent_hint": op.idempotent}
    return ToolAnnotations.model_validate(hints)


def build_server(loop: EmbedLoop, scheduler: FineTuneScheduler | None = None) -> MCPServer:
    """An ``MCPServer`` whose tools (one per :data:`~embedloop.operations.OPERATIONS`) call ``loop``."""
    skill = Agent2EmbeddingSkill(loop, scheduler)
    tools = [_tool(op, skill) for op in OPERATIONS]
    return MCPServer(
        "embedloop", instructions=INSTRUCTIONS, version=embedloop.__version__, tools=tools, log_level="WARNING"
    )


class _GivenArguments(ArgModelBase):
    """Passes on only the arguments the client sent: the skill's own defaults apply to the others."""

    def model_dump_one_level(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


def _tool(op: Operation, skill: Agent2EmbeddingSkill) -> Tool:
    """The MCP tool of ``op``: its argument model validates the call (unknown arguments refused)."""
    arg_model: type[ArgModelBase] = type(
        op.params.__name__,
        (op.params, _GivenArguments),
        {"model_config": ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True)},
    )

    async def call(**arguments: Any) -> Any:
        try:
            result = await skill.call(op.name, arguments)
        except EmbedLoopError as exc:
            raise tool_error(exc) from exc
        # MCP results are objects: the one list result (list_model_versions) comes as {"versions": [...]}
        return {"versions": result} if isinstance(result, list) else result

    return Tool(
        fn=call,
        name=op.name,
        title=None,
        description=op.description,
        parameters=op.schema(),
        fn_metadata=FuncMetadata(arg_model=arg_model),
        is_async=True,
        context_kwarg=None,
        annotations=_annotations(op),
    )


class BearerGuard:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``.

    With ``token=None`` requests pass (only allowed on loopback with ``insecure``).
    """

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Answer 401 to an HTTP request without the right token; pass everything else on."""
        if scope["type"] == "http" and self.token is not None:
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"")
            expected = b"Bearer " + self.token.encode()
            if not secrets.compare_digest(given, expected):
                body = json.dumps(error_body("Unauthorized", "Send 'Authorization: Bearer <token>'.")).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer, settings: Settings, host: str = "127.0.0.1", insecure: bool = False) -> BearerGuard:
    """The streamable-HTTP ASGI app (path ``/mcp``) behind the bearer-token check."""
    check_bind(host, insecure)
    if settings.api_token is None and not insecure:
        raise ConfigError(
            "MCP over HTTP exposes fine-tuning and rollback: set EMBEDLOOP_API_TOKEN, or use --insecure on a "
            "loopback address (127.0.0.1), or the stdio transport."
        )
    warn_weak_tokens(settings)
    limited = BodySizeLimit(server.streamable_http_app(host=host), settings.max_request_bytes)
    return BearerGuard(limited, settings.api_token)


def run_mcp(
    settings: Settings,
    transport: str = "stdio",
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    insecure: bool = False,
    with_scheduler: bool = False,
) -> None:
    """Serve the MCP tools over ``transport`` ("stdio" or "http") until the client leaves or a signal arrives."""
    if transport not in ("stdio", "http"):
        raise InvalidInputError(f"transport must be 'stdio' or 'http', got {transport!r}.", field="transport")
    # Over stdio, stdout is the protocol: keep stray prints of model loading off it.
    with contextlib.redirect_stdout(sys.stderr):
        loop = EmbedLoop(settings)
        loop.warm_up()  # the model loads before the server answers, not at the first search
    scheduler = FineTuneScheduler(loop) if with_scheduler else None
    server = build_server(loop, scheduler)
    closed = False

    def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        if scheduler is not None and not scheduler.stop(timeout=10):
            logger.warning("A fine-tuning cycle is still running; its training lock lease will expire on its own.")
        loop.close()

    try:
        app = http_app(server, settings, host, insecure) if transport == "http" else None
        if app is not None:  # the scheduler starts once the server accepts connections
            ready = start_scheduler_when_ready(scheduler, f"http://{host}:{port}/mcp") if scheduler else None
            run_uvicorn(app, host, port, log_level="warning", on_ready=ready)
        else:
            if scheduler is not None:  # stdio is ready as soon as it reads
                logger.info("MCP server ready on stdio; the fine-tuning scheduler starts now (first check now).")
                scheduler.start()
            _run_stdio(server, close)
    finally:
        close()


def _run_stdio(server: MCPServer, close: Callable[[], None]) -> None:
    """Serve over stdio until the client closes stdin, or SIGINT / SIGTERM arrives.

    A signal closes everything from its handler and ends the process there
    (status 0): unwinding through asyncio instead would cancel the server and
    wait for its stdin read, which only ends when the client writes or closes
    stdin, and would log the cancelled reader as an unhandled error.
    """

    def _stop(signum: int, _frame: Any) -> None:
        logger.info("Received %s: stopping the MCP server.", signal.Signals(signum).name)
        try:
            close()
        finally:
            logger.info("MCP server stopped by a signal.")
            _exit_now()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.Signals.SIGINT, signal.Signals.SIGTERM):
            previous[sig] = signal.signal(sig, _stop)
    try:
        server.run("stdio")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _exit_now() -> NoReturn:
    """End the process with status 0 once everything is closed.

    The SDK reads stdin in a non-daemon worker thread that stays blocked in
    ``read()`` while the client keeps stdin open; a normal exit would wait for
    it forever.
    """
    logging.shutdown()
    sys.stderr.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """``python -m embedloop.serving.mcp_server``: the MCP server for one storage folder."""
    args = parse_args(argv, prog="python -m embedloop.serving.mcp_server", description="The embedloop MCP server.")
    try:
        run_mcp(
            args.settings,
            args.transport,
            args.host,
            args.port,
            insecure=args.insecure,
            with_scheduler=args.with_scheduler,
        )
    except EmbedLoopError as exc:
        logger.error("%s", exc)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
