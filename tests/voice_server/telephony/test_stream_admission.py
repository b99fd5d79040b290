"""Who gets to hold a media stream before its `start`: the start deadline, the cap on streams
waiting for one, and peers that vanish before starting (one log line each, no traceback)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection

from media import twilio as protocol
from tests.voice_server.conftest import Server, logged
from tests.voice_server.telephony.test_stream import (
    accept_call,
    closed_code,
    connect,
    first_agent_media,
    start_frame,
)
from voice_server.serving import serve_in_background
from voice_server.settings import Settings
from voice_server.simulation.simulator import new_call_sid

START_TIMEOUT_S = 0.3
PENDING_LIMIT = 5


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        scheduler=False,
        log_format="console",
        stream_start_timeout_seconds=START_TIMEOUT_S,
        max_pending_streams=PENDING_LIMIT,
    )


async def silent_streams(server: Server, count: int) -> list[ClientConnection]:
    """Streams that answer pings (the client does) and send nothing."""
    return [await connect(server.settings.stream_url) for _ in range(count)]


async def records_until(
    caplog: pytest.LogCaptureFixture, done: int, *events: str
) -> list[logging.LogRecord]:
    """Wait for `done` records carrying any of `events` (or an ERROR), then return them all."""

    def matching() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.levelno >= logging.ERROR
            or (isinstance(r.msg, dict) and r.msg.get("event") in events)
        ]

    async with asyncio.timeout(10):
        # The server's log is the only observable of a stream whose peer is gone: poll it.
        while len(matching()) < done:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    return matching()


async def test_a_stream_that_never_starts_is_closed_at_the_deadline(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    streams = await silent_streams(server, PENDING_LIMIT)
    loop = asyncio.get_running_loop()
    opened = loop.time()

    async with asyncio.timeout(10):
        codes = await asyncio.gather(*(closed_code(stream) for stream in streams))

    assert codes == [1008] * PENDING_LIMIT
    assert START_TIMEOUT_S <= loop.time() - opened < START_TIMEOUT_S + 2
    refused = logged(caplog, "media stream refused")
    assert [entry["reason"] for entry in refused] == ["no start within 0.3 s"] * PENDING_LIMIT
    assert all(entry["level"] == "warning" for entry in refused)


def patient(server: Server) -> Settings:
    """The server's settings with a start deadline no test reaches: only the test ends a stream."""
    return server.settings.model_copy(update={"stream_start_timeout_seconds": 30})


def stream_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/twilio/stream"


async def test_streams_beyond_the_pending_cap_are_refused_at_once(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve_in_background(patient(server), server.db) as base_url:
        url = stream_url(base_url)
        waiting = [await connect(url) for _ in range(PENDING_LIMIT)]
        async with connect(url) as extra, asyncio.timeout(2):
            assert await closed_code(extra) == 1013
        refused = [entry["reason"] for entry in logged(caplog, "media stream refused")]
        assert refused == ["too many streams waiting for start (limit 5)"]

        # A stream that starts frees its place at once: a real call gets in again.
        call_sid = new_call_sid()
        _, parameters = await accept_call(server, call_sid)
        started = waiting.pop()
        await started.send(start_frame(call_sid, parameters))
        await first_agent_media(started)
        second_sid = new_call_sid()
        _, second_parameters = await accept_call(server, second_sid)
        async with connect(url) as next_call:
            await next_call.send(start_frame(second_sid, second_parameters))
            await first_agent_media(next_call)
            await hang_up(next_call, second_sid)
        await hang_up(started, call_sid)
        for stream in waiting:
            await stream.close()


async def hang_up(websocket: ClientConnection, call_sid: str) -> None:
    await websocket.send(protocol.build_stop(2, "MZ" + "2" * 32, call_sid, "AC" + "0" * 32))
    assert await closed_code(websocket) == 1000


async def test_peers_that_drop_before_start_log_one_line_each(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    drops = PENDING_LIMIT
    async with serve_in_background(patient(server), server.db) as base_url:
        streams = [await connect(stream_url(base_url)) for _ in range(drops)]
        for stream in streams:
            stream.transport.abort()  # gone without a closing handshake
        records = await records_until(caplog, drops, "media stream closed before start")

    assert [r.levelno for r in records] == [logging.INFO] * drops
    stream_records = [r for r in caplog.records if r.name.startswith(("voice_server", "uvicorn"))]
    assert len(stream_records) == drops
    assert not any(r.exc_info for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
