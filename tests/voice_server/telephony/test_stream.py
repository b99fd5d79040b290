"""WebSocket /twilio/stream at the edge: tokens, malformed frames, and the call's end."""

from __future__ import annotations

import asyncio
import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
from websockets.asyncio import client
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from media import twilio as protocol
from media.codec import FRAME_BYTES, ULAW_SILENCE
from stores.calls import Call, CallStore
from tests.voice_server.conftest import Server, logged
from tests.voice_server.telephony.test_voice_webhooks import call_form, post_signed
from voice_server.serving import serve_in_background
from voice_server.simulation.phone_line import inbound_start
from voice_server.simulation.simulator import CallerScript, Line, new_call_sid, place_call


def connect(url: str, **options: Any) -> client.connect:
    """A client that keeps reading what it does not consume, as Twilio does. With websockets'
    default bounded queue an unread backlog of agent audio stops it reading, so it never sees
    the server's reply to its close and gives up only after its 10 s close timeout."""
    return client.connect(url, max_queue=None, **options)


async def accept_call(server: Server, call_sid: str) -> tuple[str, dict[str, str]]:
    response = await post_signed(server, "/twilio/voice", call_form(server.line.number, call_sid))
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    assert stream is not None
    return stream.attrib["url"], {
        p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")
    }


def start_frame(call_sid: str, parameters: dict[str, str]) -> str:
    start = inbound_start(call_sid, "AC" + "0" * 32, parameters, stream_sid="MZ" + "2" * 32)
    return protocol.build_start(1, start)


@asynccontextmanager
async def stream_for(server: Server, call_sid: str) -> AsyncIterator[ClientConnection]:
    url, parameters = await accept_call(server, call_sid)
    async with connect(url, max_size=2**21) as websocket:
        await websocket.send(protocol.build_connected())
        await websocket.send(start_frame(call_sid, parameters))
        yield websocket


async def ended_call(server: Server, call_sid: str) -> Call:
    """The call's record once it is finalised."""
    calls = CallStore(server.db)
    async with asyncio.timeout(10):
        # The stored record is the only observable once the caller is gone: poll it.
        while (call := await calls.get(call_sid)) is None or call.status != "completed":  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return call


async def first_agent_media(websocket: ClientConnection) -> protocol.OutboundMedia:
    async for message in websocket:
        event = protocol.parse_outbound(str(message))
        if isinstance(event, protocol.OutboundMedia):
            return event
    raise AssertionError("the stream closed before any agent audio")


async def closed_code(websocket: ClientConnection) -> int | None:
    """Read (and drop) agent frames until the server closes the stream; its close code."""
    with suppress(ConnectionClosed):
        async for _ in websocket:
            pass
    return websocket.close_code


async def test_stream_with_a_forged_token_is_closed_before_anything_happens(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    call_sid = new_call_sid()
    url, parameters = await accept_call(server, call_sid)
    async with connect(url) as websocket:
        await websocket.send(protocol.build_connected())
        await websocket.send(
            start_frame(call_sid, {**parameters, "token": parameters["token"] + "x"})
        )
        assert await closed_code(websocket) == 1008
    assert logged(caplog, "media stream refused")[0]["reason"] == "stream token signature is wrong"


async def test_stream_without_a_token_is_refused(server: Server) -> None:
    call_sid = new_call_sid()
    url, _ = await accept_call(server, call_sid)
    async with connect(url) as websocket:
        await websocket.send(start_frame(call_sid, {}))
        assert await closed_code(websocket) == 1008


async def test_token_of_another_call_is_refused(server: Server) -> None:
    first, second = new_call_sid(), new_call_sid()
    url, parameters = await accept_call(server, first)
    await accept_call(server, second)
    async with connect(url) as websocket:
        await websocket.send(start_frame(second, parameters))
        assert await closed_code(websocket) == 1008


async def test_a_token_works_once(server: Server) -> None:
    call_sid = new_call_sid()
    url, parameters = await accept_call(server, call_sid)
    async with connect(url) as websocket:
        await websocket.send(start_frame(call_sid, parameters))
        await first_agent_media(websocket)
        async with connect(url) as replay:
            await replay.send(start_frame(call_sid, parameters))
            assert await closed_code(replay) == 1008


async def test_a_stream_without_a_grant_still_opens_its_call(server: Server) -> None:
    """TwiML of an earlier version (a rolling upgrade: the webhook reached an older server)
    has the token alone: the stream reads the agent from the call record instead."""
    call_sid = new_call_sid()
    url, parameters = await accept_call(server, call_sid)
    del parameters["grant"]
    async with connect(url) as websocket:
        await websocket.send(start_frame(call_sid, parameters))
        await first_agent_media(websocket)


async def test_media_before_start_is_refused(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    call_sid = new_call_sid()
    url, _ = await accept_call(server, call_sid)
    async with connect(url) as websocket:
        await websocket.send(
            protocol.build_inbound_media(1, "MZ" + "2" * 32, 1, 20, ULAW_SILENCE * FRAME_BYTES)
        )
        assert await closed_code(websocket) == 1008
    assert logged(caplog, "media stream refused")[0]["reason"] == "media event before start"


MALFORMED: dict[str, str | bytes] = {
    "not JSON": "{this is not json",
    "unknown event": json.dumps({"event": "hologram", "streamSid": "MZ"}),
    "bad base64": json.dumps(
        {
            "event": "media",
            "sequenceNumber": "3",
            "streamSid": "MZ",
            "media": {
                "track": "inbound",
                "chunk": "1",
                "timestamp": "20",
                "payload": "%%%not-base64",
            },
        }
    ),
    "1 MB frame": json.dumps(
        {
            "event": "media",
            "sequenceNumber": "4",
            "streamSid": "MZ",
            "media": {
                "track": "inbound",
                "chunk": "2",
                "timestamp": "40",
                "payload": base64.b64encode(b"\xff" * 750_000).decode(),
            },
        }
    ),
    "binary frame": b"\x00\x01\x02",
}


async def test_malformed_frames_are_logged_and_the_call_goes_on(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    call_sid = new_call_sid()
    async with stream_for(server, call_sid) as websocket:
        for frame in MALFORMED.values():  # at once: some may come before the call runs
            await websocket.send(frame)
        # The call is alive: the greeting still arrives, and a stop still ends it cleanly.
        await first_agent_media(websocket)
        for frame in MALFORMED.values():  # while it runs: handed to it as they arrive
            await websocket.send(frame)
        await websocket.send(protocol.build_stop(9, "MZ" + "2" * 32, call_sid, "AC" + "0" * 32))
        await closed_code(websocket)

    dropped = logged(caplog, "malformed media-stream frame dropped")
    assert len(dropped) == 2 * len(MALFORMED)
    assert [entry.get("call_sid") for entry in dropped] == [call_sid] * len(dropped)
    call = await CallStore(server.db).get(call_sid)
    assert call is not None
    assert call.status == "completed"
    assert call.end_reason == "caller-hung-up"


async def test_a_flood_of_garbage_hangs_up_and_finalizes(server: Server) -> None:
    call_sid = new_call_sid()
    async with stream_for(server, call_sid) as websocket:
        for _ in range(60):
            await websocket.send("garbage")
        assert await closed_code(websocket) == 1008
    call = await CallStore(server.db).get(call_sid)
    assert call is not None
    assert call.status == "completed"
    assert call.end_reason == "too-many-malformed-frames"


async def test_disconnect_without_stop_still_finalizes(server: Server) -> None:
    call_sid = new_call_sid()
    async with stream_for(server, call_sid) as websocket:
        await first_agent_media(websocket)
    call = await ended_call(server, call_sid)
    assert call.end_reason == "stream-closed"
    assert call.duration_seconds is not None


async def test_a_broken_call_does_not_disturb_another(server: Server) -> None:
    line = Line(server.base_url, server.line.auth_token, "+15550100199", server.line.number)
    good = asyncio.create_task(place_call(line, CallerScript(turns=["Hello there."])))
    bad_sid = new_call_sid()
    async with stream_for(server, bad_sid) as websocket:
        for _ in range(60):
            await websocket.send(MALFORMED["not JSON"])
    result = await good
    assert result.turns[0].reply_latency_ms is not None
    call = await CallStore(server.db).get(result.call_sid)
    assert call is not None
    assert call.status == "completed"
    assert [entry.role for entry in call.transcript] == ["assistant", "user", "assistant"]


async def test_a_replayed_token_is_refused_by_another_server_too(server: Server) -> None:
    call_sid = new_call_sid()
    _, parameters = await accept_call(server, call_sid)
    # A second instance behind the same load balancer: same secret, same database.
    async with serve_in_background(server.settings, server.db) as other_base:
        other_url = other_base.replace("http://", "ws://") + "/twilio/stream"
        async with connect(other_url) as websocket:
            await websocket.send(start_frame(call_sid, parameters))
            await first_agent_media(websocket)
            async with connect(server.settings.stream_url) as replay:
                await replay.send(start_frame(call_sid, parameters))
                assert await closed_code(replay) == 1008
