"""The media stream's WebSocket served by picows, beside uvicorn on the same port.

Why: a call's stream carries 50 small frames a second in, and under ASGI each one goes through
`websockets`' parser, uvicorn's message dicts and Starlette's receive. Served by picows (a
Cython WebSocket library on the same event loop) the same traffic costs less than half as much:
0.057 against 0.110 CPU-s per connection-minute, 100 Twilio-shaped streams on one core.

Its frames are queued for `serve_stream` until the call starts, and handed to the call
(`push_to`) from then on, in picows' callback, with no queue and no task woken per frame.

How: uvicorn reads the HTTP upgrade request and hands the connection to its WebSocket protocol
class, which is `StreamUpgrade` (`voice_server.serving.uvicorn_config`). A request for
`STREAM_PATH` is handed on to picows with `StreamConnection` as its listener; any other upgrade
goes to uvicorn's own `websockets-sansio` protocol and the ASGI app, as before. The stream then
runs `voice_server.telephony.media_stream.serve_stream`, the same code the ASGI route runs.

picows offers no public way to take over a connection that another protocol accepted, so
`_picows_protocol` builds its protocol class by its constructor's parameter names: a picows
release that changes them fails the first stream loudly (and every stream test), not silently.

A stream's task and connection are registered in uvicorn's server state, as uvicorn's own
WebSocket protocols do: a stopping server closes the stream with 1012 and waits for its task,
which records the call's end. A peer gone silent is pinged and closed on uvicorn's
`ws_ping_interval` and `ws_ping_timeout`, as uvicorn's own protocol would. Fragmented
messages are not reassembled (Twilio never fragments): each fragment arrives as a frame of
its own and is dropped as malformed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from picows import WSAutoPingStrategy, WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from picows.picows import WSProtocol  # type: ignore[attr-defined]  # not public: see above
from starlette.types import Message
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from voice_server.log import get_logger
from voice_server.services import Services
from voice_server.telephony.media_stream import (
    INTERNAL_ERROR,
    STREAM_PATH,
    FrameSink,
    StreamGone,
    serve_stream,
)

log = get_logger(__name__)

NO_STATUS = 1005  # RFC 6455 §7.1.5: the peer's close frame carried no code
SERVICE_RESTART = 1012  # RFC 6455 §7.4.1, IANA registry: the server is restarting
MAX_FRAME_BYTES = 1 << 20  # a Twilio frame is under 1 KB; a larger one closes the stream (1009)
# Frames the call has not taken yet: past this many the socket is not read until it has taken
# them all, so a peer that sends faster than the call reads is held back by TCP, not memory.
MAX_QUEUED_FRAMES = 32
_READ_BUFFER_BYTES = 4096  # grows by itself if a frame needs more
_DATA_FRAMES = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION)

# picows logs each connection and disconnection at INFO; its warnings and errors are kept.
_picows_log = logging.getLogger("picows.media_stream")
_picows_log.setLevel(logging.WARNING)


class StreamUpgrade(asyncio.Protocol):
    """uvicorn's WebSocket protocol (its `ws` setting): sends a media-stream upgrade to picows
    and any other upgrade to uvicorn's `websockets-sansio` protocol."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        """`data` is the whole upgrade request: uvicorn passes it in one piece."""
        transport = self._transport
        assert transport is not None
        services = self._app_state.get("services")
        if _request_path(data) == STREAM_PATH and isinstance(services, Services):
            stream = _picows_protocol(
                lambda request: StreamConnection(services, self._server_state), self._config
            )
            transport.set_protocol(stream)
            stream.connection_made(transport)
            buffer = stream.get_buffer(len(data))
            buffer[: len(data)] = data
            stream.buffer_updated(len(data))
            return
        other = WebSocketsSansIOProtocol(
            config=self._config, server_state=self._server_state, app_state=self._app_state
        )
        other.connection_made(transport)
        transport.set_protocol(other)
        other.data_received(data)


def _request_path(request: bytes) -> str:
    """The path of the request line uvicorn rebuilt (`GET /path?query HTTP/1.1`)."""
    return request.split(b" ", 2)[1].split(b"?", 1)[0].decode("latin-1")


def _picows_protocol(listener_factory: Any, config: Config) -> WSProtocol:
    """picows' server protocol. A peer silent for uvicorn's `ws_ping_interval` is pinged, and
    the stream is closed if no pong comes within `ws_ping_timeout`, as uvicorn does; a live
    Twilio stream sends 50 frames a second, so it is never pinged."""
    interval, timeout = config.ws_ping_interval, config.ws_ping_timeout
    return WSProtocol(
        host_port=None,
        ws_path=None,
        is_client_side=False,
        ws_listener_factory=listener_factory,
        logger=_picows_log,
        disconnect_on_exception=True,
        websocket_handshake_timeout=None,
        enable_auto_ping=bool(interval),
        auto_ping_idle_timeout=interval or 20,
        auto_ping_reply_timeout=min(timeout or 20, interval or 20),
        auto_ping_strategy=WSAutoPingStrategy.PING_WHEN_IDLE,
        enable_auto_pong=True,
        max_frame_size=MAX_FRAME_BYTES,
        extra_headers=None,
        read_buffer_init_size=_READ_BUFFER_BYTES,
    )


class StreamConnection(WSListener):
    """One media stream over picows: its frames are queued as ASGI-shaped messages for
    `serve_stream`, which it serves as the stream's socket (`media_stream.StreamSocket`), until
    they are pushed to the call (`media_stream.FramePusher`)."""

    def __init__(self, services: Services, server_state: ServerState) -> None:
        self._services = services
        self._server_state = server_state
        self._messages: asyncio.Queue[Message] = asyncio.Queue()
        self._transport: WSTransport | None = None
        self._peer_close_code: int | None = None
        self._reading_paused = False
        self._sink: FrameSink | None = None

    # picows' callbacks

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        self._server_state.connections.add(self)  # type: ignore[arg-type]
        task = asyncio.get_running_loop().create_task(self._serve())
        self._server_state.tasks.add(task)
        task.add_done_callback(self._server_state.tasks.discard)

    async def _serve(self) -> None:
        try:
            await serve_stream(self, self._services)
        except Exception:  # what uvicorn does for an ASGI app that raises
            log.exception("media stream failed")
            self._send_close(INTERNAL_ERROR, "")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type in _DATA_FRAMES:
            payload = frame.get_payload_as_bytes()
            if self._sink is not None:
                self._sink.frame(payload)
                return
            self._messages.put_nowait({"type": "websocket.receive", "bytes": payload})
            if self._messages.qsize() >= MAX_QUEUED_FRAMES and not self._reading_paused:
                self._reading_paused = True
                transport.underlying_transport.pause_reading()
        elif frame.msg_type == WSMsgType.CLOSE:
            code = frame.get_close_code().value
            self._peer_close_code = code or NO_STATUS
            self._send_close(code or 1000, "")  # the peer's code echoed (RFC 6455 §5.5.1)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        code = 1006 if self._peer_close_code is None else self._peer_close_code
        self._server_state.connections.discard(self)
        if self._sink is not None:
            self._sink.closed(code)
        else:
            self._messages.put_nowait({"type": "websocket.disconnect", "code": code})

    def shutdown(self) -> None:
        """uvicorn's call, as it stops (after the drain): the stream ends now."""
        self._send_close(SERVICE_RESTART, "the server is restarting")

    # the stream's socket, for `serve_stream`

    async def accept(self) -> None:
        """Nothing to do: picows answered the upgrade before the stream began."""

    async def receive(self) -> Message:
        message = await self._messages.get()
        if self._messages.empty():
            self._resume_reading()
        return message

    def push_to(self, sink: FrameSink) -> None:
        self._sink = sink
        while not self._messages.empty():
            message = self._messages.get_nowait()
            if message["type"] == "websocket.disconnect":
                sink.closed(message["code"])
            else:
                sink.frame(message["bytes"])
        self._resume_reading()

    def _resume_reading(self) -> None:
        """Read the socket again, if it was paused for frames the call had not taken."""
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.underlying_transport.resume_reading()

    async def send_text(self, data: str) -> None:
        transport = self._transport
        if transport is None or transport.is_disconnected or transport.is_close_frame_sent:
            raise StreamGone("the media stream is closed")
        transport.send(WSMsgType.TEXT, data.encode())

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self._send_close(code, reason or "")

    def _send_close(self, code: int, reason: str) -> None:
        transport = self._transport
        if transport is None or transport.is_disconnected:
            return
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code), reason.encode())
        transport.disconnect()
