"""Caller audio that is not Twilio's steady 20 ms frames: odd payload sizes, and bursts. The call
goes on and later speech is still answered."""

from __future__ import annotations

import logging

import pytest

from stores.calls import CallStore
from tests.voice_server.conftest import Server, logged
from voice_server.simulation.caller_script import Burst, CallerScript, Say
from voice_server.simulation.simulator import Line, place_call

QUESTION = "Hello, what are your opening hours?"


def caller_line(server: Server) -> Line:
    return Line(server.base_url, server.line.auth_token, "+15550100199", server.line.number)


async def test_media_payloads_of_any_size_are_survived(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    odd = (Burst(1, 0, when="after-agent"), Burst(1, 2), Burst(3, 100), Burst(1, 20_000))
    script = CallerScript(steps=(*odd, Say(QUESTION, when="now")))

    result = await place_call(caller_line(server), script)

    assert result.turns[0].reply_latency_ms is not None, "the question after them was answered"
    call = await CallStore(server.db).get(result.call_sid)
    assert call is not None
    assert call.end_reason == "caller-hung-up"
    assert [entry.role for entry in call.transcript] == ["assistant", "user", "assistant"]
    dropped = logged(caplog, "malformed media-stream frame dropped")
    assert [entry["reason"] for entry in dropped] == [
        "media.payload of 20000 bytes exceeds 8000 (1 s of audio)"
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
