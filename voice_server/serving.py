"""How uvicorn serves the app, wherever it does (`voice-server serve`, the demo, the tests), and
how `voice-server serve` stops: by draining its calls (`DrainingServer`).

uvicorn's access log is off: `voice_server.access_log` writes one line per request instead, with
no query values in it. Logging is left to `voice_server.log.configure_logging`.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stores.database import Database
from voice_server.app import create_app
from voice_server.live_calls import LiveCalls
from voice_server.log import get_logger
from voice_server.providers.registry import ProviderRegistry
from voice_server.settings import Settings
from voice_server.telephony.stream_socket import StreamUpgrade

log = get_logger(__name__)

YOUNG_COLLECTION_ALLOCATIONS = 50_000


def uvicorn_config(app: ASGIApp | Callable[[], ASGIApp], **options: Any) -> uvicorn.Config:
    """uvicorn's settings for the app; `options` are the caller's own (host, port, loop, …),
    and win over ours.

    Media streams are served by picows, other WebSockets by `websockets-sansio`
    (`voice_server.telephony.stream_socket`). Of uvicorn's own WebSocket protocols,
    `websockets-sansio` costs least on media-stream traffic (50 inbound frames and five 200 ms
    media messages a second per call, 100 connections, server pinned to one core): 0.07 CPU-s
    per call-minute, against 0.09 for `websockets` and 0.10-0.12 for `wsproto`.
    """
    ours: dict[str, Any] = {"log_config": None, "access_log": False, "ws": StreamUpgrade}
    return uvicorn.Config(app, **(ours | options))


def collector_tuned_after_startup(app: ASGIApp) -> ASGIApp:
    """`app`, with the garbage collector tuned once its lifespan has started (`voice-server
    serve`, in each worker):

    - `gc.freeze()`: what start-up built (modules, clients, caches) lives as long as the
      process, so the collector's full passes leave it out instead of walking it every time
      (78 ms, a stall of every call, for the 153 000 objects of a started server);
    - the youngest generation collected every `YOUNG_COLLECTION_ALLOCATIONS` instead of 700:
      a call's 20 ms path allocates briskly, and most of it dies by reference counting before
      a collection would look at it, so fewer of its objects are promoted and the full passes
      over the live calls, which stall every call at once, come rarely. At 100 calls on one
      core the loop's worst stall fell from 44–84 ms to 13–21 ms (`scripts/bench`).
    """

    async def app_then_freeze(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def send_then_freeze(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                gc.collect()
                gc.freeze()
                gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, *gc.get_threshold()[1:])

        await app(scope, receive, send_then_freeze)

    return app_then_freeze


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
        async with serving_on(sock, config):
            yield base_url


@asynccontextmanager
async def serving_on(sock: socket.socket, config: uvicorn.Config) -> AsyncIterator[None]:
    """uvicorn with `config` on the bound `sock`, from when it has started until the block
    ends (then it stops, running the app's shutdown)."""
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                await serving
                raise RuntimeError("the server stopped during start-up")
            await asyncio.sleep(0.01)  # uvicorn offers no start-up event to wait on
        yield
    finally:
        server.should_exit = True
        await serving


class Drain:
    """What the stop signals do to a serving process: the first drains the live calls
    (`LiveCalls.drain`), then calls `stop` with that signal; a later one among `hurried_by`
    hurries the drain (the calls end at once, without the goodbye)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        live_calls: LiveCalls,
        seconds: float,
        stop: Callable[[signal.Signals], None],
        *,
        hurried_by: Collection[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
    ) -> None:
        self._loop = loop
        self._live_calls = live_calls
        self._seconds = seconds
        self._stop = stop
        self._hurried_by = hurried_by
        self._drain: asyncio.Task[None] | None = None

    def on_signal(self, sig: int, frame: FrameType | None) -> None:
        """The signal handler (on the main thread, between two steps of the loop)."""
        self._loop.call_soon_threadsafe(self._on_signal, signal.Signals(sig))

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._drain is None:
            log.info("stop requested: draining", signal=sig.name)
            self._drain = asyncio.ensure_future(self._drained(sig))
        elif sig in self._hurried_by:
            log.info("stop requested again: ending the live calls now", signal=sig.name)
            self._live_calls.hurry()
        else:
            log.info("stop requested again: still draining", signal=sig.name)

    async def _drained(self, sig: signal.Signals) -> None:
        await self._live_calls.drain(self._seconds)
        log.info("drained: stopping")
        self._stop(sig)


class DrainingServer(uvicorn.Server):
    """uvicorn, except that SIGTERM or SIGINT drains the live calls (`Drain`) before the server
    stops, and a second signal hurries the drain. The process then exits 0 (uvicorn itself
    would raise the signal again once stopped)."""

    def __init__(self, config: uvicorn.Config, live_calls: LiveCalls, drain_seconds: float) -> None:
        super().__init__(config)
        self._live_calls = live_calls
        self._drain_seconds = drain_seconds
        self._drain: Drain | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._drain = Drain(
            asyncio.get_running_loop(), self._live_calls, self._drain_seconds, self._exit
        )
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain is None:
            self.should_exit = True  # not serving yet: nothing to drain
            return
        self._drain.on_signal(sig, frame)

    def _exit(self, sig: signal.Signals) -> None:
        self.should_exit = True
