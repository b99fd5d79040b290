"""Serving a stand-in ASGI app under uvicorn on a local port, for as long as a block runs."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.types import ASGIApp

from voice_server.serving import serving_on, uvicorn_config


@asynccontextmanager
async def serve_app(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """`app` at host:port (a free port by default), with its lifespan and WebSockets; the base
    URL it answers at. Leaving the block stops the server and runs the lifespan's shutdown."""
    with socket.socket() as sock:
        sock.bind((host, port))
        config = uvicorn_config(app, log_level="warning", lifespan="auto")
        async with serving_on(sock, config):
            yield f"http://{host}:{sock.getsockname()[1]}"
