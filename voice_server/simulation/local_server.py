"""Serving a stand-in ASGI app under uvicorn on a local port, for as long as a block runs."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp


@asynccontextmanager
async def serve_app(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """`app` at host:port (a free port by default), with its lifespan and WebSockets; the base
    URL it answers at. Leaving the block stops the server and runs the lifespan's shutdown."""
    with socket.socket() as sock:
        sock.bind((host, port))
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="auto",
            ws="websockets-sansio",
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if serving.done():
                    await serving
                    raise RuntimeError("the server stopped during start-up")
                await asyncio.sleep(0.01)  # uvicorn offers no start-up event to wait on
            yield f"http://{host}:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            await serving
