"""Request limits of the HTTP API: the body size cap, and positions in malformed JSON.

:class:`BodySizeLimit` refuses a body over its endpoint's cap before it is read
(catalog uploads: ``EMBEDLOOP_MAX_REQUEST_BYTES``, 32 MiB by default; every other
endpoint: 2 MiB plus 1 KiB per id ``EMBEDLOOP_MAX_K`` allows, about 3 MiB):
from its ``Content-Length`` at once, or, for a chunked body, as soon as the
bytes received pass the cap. Either way the answer is 413 with the usual
error body, in well under a millisecond of CPU (``bench/rejected_requests.py``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from embedloop.serving.common import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _too_large(size: int | None, limit: int) -> str:
    seen = f"{size} bytes" if size is not None else "more bytes than that"
    return (
        f"The request body is {seen}; the limit for this endpoint is {limit} bytes "
        "(catalog uploads: EMBEDLOOP_MAX_REQUEST_BYTES; other endpoints: 2 MiB + 1 KiB per EMBEDLOOP_MAX_K). "
        "Send fewer items per request."
    )


def small_body_limit(max_k: int, max_request_bytes: int) -> int:
    """The body cap of every endpoint but the catalog's: 2 MiB plus 1 KiB per id a request may list."""
    return min(max_request_bytes, 2 * 1024 * 1024 + 1024 * max_k)


class BodySizeLimit:
    """ASGI middleware: answer 413 to any HTTP request whose body exceeds its path's cap.

    ``max_bytes`` applies to paths under ``large_prefixes`` (catalog uploads);
    every other path gets ``small_bytes`` (default: ``max_bytes``).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        small_bytes: int | None = None,
        large_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.small_bytes = max_bytes if small_bytes is None else min(small_bytes, max_bytes)
        self.large_prefixes = large_prefixes

    def limit_for(self, path: str) -> int:
        """The cap for a request to ``path``."""
        return self.max_bytes if path.startswith(self.large_prefixes) else self.small_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count the bytes as they arrive."""
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("path", "")))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_413(send, _too_large(declared, limit))
            return
        received = 0
        refused = False

        async def counting_receive() -> Message:
            # A chunked body: answer 413 once the cap is passed, then tell the app the client left.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message.get("type") == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    await _send_413(send, _too_large(None, limit))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # the app's own answer to a refused body is dropped
                await send(message)

        await self.app(scope, counting_receive, guarded_send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, message: str) -> None:
    body = json.dumps(error_body("RequestTooLargeError", message, "body")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def json_position(document: str | bytes | None, offset: int) -> tuple[int, int] | None:
    """Line and column (both from 1) of character ``offset`` in ``document``."""
    if document is None or not isinstance(offset, int) or offset < 0:
        return None
    text = document.decode("utf-8", errors="replace") if isinstance(document, bytes) else document
    if not isinstance(text, str):
        return None
    offset = min(offset, len(text))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column
