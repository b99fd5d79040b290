"""The access log: one structured line per HTTP request, in place of uvicorn's.

uvicorn's access line holds the whole URL, query string included, and the call log's event
streams carry their token there. Ours holds the method, the path, the *names* of the query
parameters (never their values), the status, how long the request took (for an event stream: how
long it stayed open) and the client's address. uvicorn's own access log is off wherever the app
is served (`voice_server.serving`).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voice_server.log import get_logger

log = get_logger("voice_server.access")
_NAMES_SHOWN = 10
_NAME_CHARS = 32


class AccessLog:
    """Pure ASGI middleware: logs each HTTP request once it is answered (or has failed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        finally:
            client = scope.get("client")
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                query=query_names(scope["query_string"]),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                client=client[0] if client else None,
            )


def query_names(query_string: bytes) -> list[str]:
    """The names of the query's parameters, never their values; a few, each cut short."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    names = dict.fromkeys(name[:_NAME_CHARS] for name, _ in pairs)
    return list(names)[:_NAMES_SHOWN]
