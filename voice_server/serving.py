"""How uvicorn serves the app, wherever it does (`voice-server serve`, the demo, the tests).

uvicorn's access log is off: `voice_server.access_log` writes one line per request instead, with
no query values in it. Logging is left to `voice_server.log.configure_logging`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from stores.database import Database
from voice_server.app import create_app
from voice_server.providers.registry import ProviderRegistry
from voice_server.settings import Settings


def uvicorn_config(app: ASGIApp, **options: Any) -> uvicorn.Config:
    """uvicorn's settings for the app; `options` are the caller's own (host, port, loop, …)."""
    return uvicorn.Config(app, log_config=None, access_log=False, ws="websockets-sansio", **options)


@asynccontextmanager
async def serve_in_background(
    settings: Settings, db: Database, providers: ProviderRegistry | None = None
) -> AsyncIterator[str]:
    """The real app under uvicorn on a free loopback port, for as long as the block runs (the
    demo, the benchmarks and the tests serve it so)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        base_url = f"http://127.0.0.1:{port}"
        app_settings = settings.model_copy(update={"public_base_url": base_url, "port": port})
        config = uvicorn_config(
            create_app(app_settings, database=db, providers=providers),
            log_level="warning",  # uvicorn's own lines only: start-up and shut-down
            lifespan="on",
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if serving.done():
                    await serving
                    raise RuntimeError("the server stopped during start-up")
                await asyncio.sleep(0.01)  # uvicorn offers no start-up event to wait on
            yield base_url
        finally:
            server.should_exit = True
            await serving
