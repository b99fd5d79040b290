"""The media stream served by picows beside uvicorn (`voice_server.telephony.stream_socket`):
what the WebSocket layer itself does with pings, oversized and fragmented frames, other paths,
and a server that stops; and the ASGI route, which other ASGI servers use."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from media import twilio as protocol
from media.codec import FRAME_BYTES, ULAW_SILENCE
from tests.voice_server.conftest import Server, logged
from tests.voice_server.telephony.test_stream import (
    accept_call,
    closed_code,
    connect,
    ended_call,
    first_agent_media,
    start_frame,
    stream_for,
)
from voice_server.app import create_app
from voice_server.serving import serve_in_background, serving_on, uvicorn_config
from voice_server.simulation.simulator import CallerScript, Line, new_call_sid, place_call
from voice_server.telephony.stream_socket import MAX_FRAME_BYTES


async def test_a_ping_on_the_stream_is_answered(server: Server) -> None:
    async with stream_for(server, new_call_sid()) as websocket:
        pong = await websocket.ping()
        async with asyncio.timeout(5):
            await pong


async def test_an_oversized_frame_closes_the_stream_with_1009_and_the_call_is_recorded(
    server: Server,
) -> None:
    call_sid = new_call_sid()
    async with stream_for(server, call_sid) as websocket:
        await first_agent_media(websocket)
        await websocket.send("x" * (MAX_FRAME_BYTES + 1))
        assert await closed_code(websocket) == 1009
    call = await ended_call(server, call_sid)
    assert call.end_reason == "stream-closed"


@pytest.mark.parametrize("code", [1001, 4000])
async def test_a_peer_closing_with_any_code_has_it_echoed_and_its_call_recorded(
    server: Server, caplog: pytest.LogCaptureFixture, code: int
) -> None:
    call_sid = new_call_sid()
    async with stream_for(server, call_sid) as websocket:
        await first_agent_media(websocket)
        await websocket.close(code)
    answered = websocket.protocol.close_rcvd
    assert answered is not None, "the server answered the close"
    assert answered.code == code
    call = await ended_call(server, call_sid)
    assert call.end_reason == "stream-closed"
    assert logged(caplog, "media stream closed by peer")[0]["code"] == code
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_each_fragment_of_a_fragmented_message_is_dropped_and_the_call_goes_on(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    call_sid = new_call_sid()
    media = protocol.build_inbound_media(3, "MZ" + "2" * 32, 1, 20, ULAW_SILENCE * FRAME_BYTES)
    async with stream_for(server, call_sid) as websocket:
        # One message in three frames: websockets ends it with an empty final fragment.
        await websocket.send([media[:40], media[40:]])
        await first_agent_media(websocket)
        await websocket.send(protocol.build_stop(9, "MZ" + "2" * 32, call_sid, "AC" + "0" * 32))
        await closed_code(websocket)
    assert len(logged(caplog, "malformed media-stream frame dropped")) == 3
    call = await ended_call(server, call_sid)
    assert call.end_reason == "caller-hung-up"


async def test_an_upgrade_to_any_other_path_is_answered_by_the_app(server: Server) -> None:
    url = server.base_url.replace("http://", "ws://") + "/twilio/streams"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    assert refused.value.response.status_code == 403  # Starlette's router: no such route


async def test_a_stopping_server_closes_its_streams_with_1012_and_records_their_calls(
    server: Server,
) -> None:
    call_sid = new_call_sid()
    _, parameters = await accept_call(server, call_sid)
    serving: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def serve_until_stopped() -> None:
        async with serve_in_background(server.settings, server.db) as base_url:
            serving.set_result(base_url)
            await stop.wait()

    other = asyncio.create_task(serve_until_stopped())
    url = ws_url(await serving)
    async with connect(url) as websocket:
        await websocket.send(start_frame(call_sid, parameters))
        await first_agent_media(websocket)
        stop.set()
        assert await closed_code(websocket) == 1012
    await other
    call = await ended_call(server, call_sid)
    assert call.end_reason == "stream-closed"


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/twilio/stream"


@asynccontextmanager
async def served_with(server: Server, **options: Any) -> AsyncIterator[str]:
    """The app under uvicorn configured as `voice-server serve` does, with `options` on top."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = server.settings.model_copy(update={"public_base_url": base_url})
        app = create_app(settings, database=server.db)
        config = uvicorn_config(app, lifespan="on", log_level="warning", **options)
        async with serving_on(sock, config):
            yield base_url


async def test_a_stream_gone_silent_is_pinged_then_closed_and_its_call_recorded(
    server: Server,
) -> None:
    call_sid = new_call_sid()
    _, parameters = await accept_call(server, call_sid)
    pinging = served_with(server, ws_ping_interval=0.5, ws_ping_timeout=0.5)
    async with pinging as base_url, connect(ws_url(base_url)) as websocket:
        await websocket.send(start_frame(call_sid, parameters))
        await first_agent_media(websocket)
        websocket.transport.pause_reading()  # the peer hears no ping, so answers none
        call = await ended_call(server, call_sid)
        websocket.transport.resume_reading()  # to read the server's close, not wait for it
    assert call.end_reason == "stream-closed"


async def test_the_asgi_route_serves_a_whole_call_too(server: Server) -> None:
    """Under uvicorn's own WebSocket protocol for every path, as another ASGI server would
    serve the app, streams reach the ASGI route."""
    async with served_with(server, ws="websockets-sansio") as base_url:
        line = Line(base_url, server.line.auth_token, "+15550100199", server.line.number)
        result = await place_call(line, CallerScript(turns=["Hello there."]))
    assert result.turns[0].reply_latency_ms is not None
    call = await ended_call(server, result.call_sid)
    assert [entry.role for entry in call.transcript] == ["assistant", "user", "assistant"]
