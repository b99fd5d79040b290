"""A whole phone call through the real server, played by the caller simulator."""

from __future__ import annotations

import re

from stores.calls import CallStore
from tests.voice_server.conftest import Server
from voice_server.simulation.simulator import CallerScript, Line, place_call


async def test_spoken_question_is_answered_and_stored(server: Server) -> None:
    line = Line(server.base_url, server.line.auth_token, "+15550100199", server.line.number)
    # No goodbye: the demo's recogniser hears it, and the stand-in would end the call.
    script = CallerScript(turns=["Hello, what are your opening hours?", "Can I book a table?"])

    result = await place_call(line, script)

    assert result.connected
    assert [turn.reply_latency_ms is not None for turn in result.turns] == [True, True]
    call = await CallStore(server.db).get(result.call_sid)
    assert call is not None
    assert call.status == "completed"
    assert call.end_reason == "caller-hung-up"
    assert call.duration_seconds is not None
    assert call.duration_seconds > 5
    roles = [entry.role for entry in call.transcript]
    assert roles == ["assistant", "user", "assistant", "user", "assistant"]
    assert call.transcript[0].text.startswith("Hello! You have reached the demo agent")
    # The recogniser's wording varies on synthetic speech; the stand-in model repeats exactly
    # what was stored for the caller, numbering the turns, which shows history reaching it.
    for turn, (heard, answer) in enumerate(
        zip(call.transcript[1::2], call.transcript[2::2], strict=True), 1
    ):
        assert re.search(r"\w", heard.text)
        assert answer.text == f"Turn {turn}. I heard you say: {heard.text}. Is there anything else?"
        assert answer.metrics is not None
        assert answer.metrics["first_audio_ms"] >= answer.metrics["endpointing_ms"] > 0
        # The recogniser's final, timed from the caller's end of speech like the rest.
        assert heard.metrics is not None
        assert heard.metrics["stt_final_ms"] == answer.metrics["stt_final_ms"]
        assert answer.metrics["stt_final_ms"] >= answer.metrics["endpointing_ms"]
        assert not answer.interrupted
    assert result.marks_echoed > 0
    assert len(result.recording_wav()) > 8000 * 2 * 5


async def test_greeting_plays_within_a_second(server: Server) -> None:
    line = Line(server.base_url, server.line.auth_token, "+15550100199", server.line.number)

    result = await place_call(line, CallerScript(turns=[]))

    assert result.connected
    first_sound = next(i for i, byte in enumerate(result.agent_audio) if byte not in (0xFF, 0x7F))
    assert first_sound / 8000 < 1.0, f"greeting started {first_sound / 8000:.2f} s into the call"
