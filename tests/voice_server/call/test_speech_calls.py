"""Whole speech-to-speech calls: the real server, the real `openai` client against a local
Realtime conversation stand-in, the caller simulator playing Twilio with espeak-ng speech."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymongo.asynchronous.database import AsyncDatabase

from media.codec import pcm16_to_ulaw
from stores.calls import Call, CallStore
from tests.voice_server.call.test_openai_call import tone
from tests.voice_server.fakes import frame_texts, recognise
from tests.voice_server.openai_fakes import FakeOpenAiHttp, pointed_at, serve_http
from tests.voice_server.realtime_conversation_fake import (
    FakeRealtimeConversation,
    Reply,
    serve_conversation,
)
from voice_server.call.phrases import FALLBACK_TEXT
from voice_server.call.speech_session import SPEECH_GOODBYE_TEXT
from voice_server.security.secret_key import secret_box
from voice_server.seed import seed_demo
from voice_server.serving import serve_in_background
from voice_server.settings import Settings
from voice_server.simulation.caller_script import (
    AwaitHangUp,
    CallerScript,
    HangUp,
    Say,
    Step,
    render_steps,
)
from voice_server.simulation.simulator import CallResult, Line, place_call

Db = AsyncDatabase[dict[str, Any]]
MODEL = "gpt-realtime-2"
PROMPT = "You answer calls for a bakery."
QUESTION = "What are your opening hours?"
SECOND = "Do you sell bread on Sundays?"
ANSWER = "We are open from nine to five every day."
LONG = " ".join(["We bake bread, cakes and pies, and we deliver them across the town."] * 4)


def ulaw_tone(seconds: float, hz: float) -> bytes:
    """μ-law at 8 kHz, what the Realtime model sends with `audio/pcmu`."""
    t = np.arange(int(8000 * seconds)) / 8000
    return pcm16_to_ulaw((np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16).tobytes())


@dataclass
class Stand:
    realtime: FakeRealtimeConversation
    http: FakeOpenAiHttp
    line: Line
    script: CallerScript


@asynccontextmanager
async def speech_line(
    database: Db, settings: Settings, steps: tuple[Step, ...], **agent: Any
) -> AsyncIterator[Stand]:
    script = CallerScript(steps=steps)
    renders = await render_steps(script)
    texts = frame_texts({s.text: a for s, a in renders.items() if isinstance(s, Say)})
    realtime = FakeRealtimeConversation(
        lambda audio: recognise(texts, audio), Reply(ANSWER, ulaw_tone(1.2, 330))
    )
    http = FakeOpenAiHttp()
    http.speech_pcm = tone(1.0)  # the greeting and the phrases rendered ahead
    async with serve_http(http), serve_conversation(realtime):
        configured = pointed_at(settings, http.base_url, realtime.websocket_base_url)
        demo = await seed_demo(database, secret_box(settings))
        fields = {
            "inferenceModel": MODEL,
            "sttModel": "gpt-4o-mini-transcribe",
            "ttsModel": "gpt-4o-mini-tts",
            "ttsVoice": "marin",
            "systemPrompt": PROMPT,
            "maxTokens": 500,
            **agent,
        }
        await database["agents"].update_one({}, {"$set": fields})
        async with serve_in_background(configured, database) as base_url:
            line = Line(base_url, demo.auth_token, "+15550100199", demo.number)
            yield Stand(realtime, http, line, script)


async def call(stand: Stand, database: Db) -> tuple[CallResult, Call]:
    result = await place_call(stand.line, stand.script)
    stored = await CallStore(database).get(result.call_sid)
    assert stored is not None
    return result, stored


def said(stored: Call) -> list[tuple[str, str]]:
    return [(entry.role, entry.text) for entry in stored.transcript]


async def test_a_call_greets_answers_two_turns_and_ends_when_the_model_says_so(
    database: Db, settings: Settings
) -> None:
    steps = (Say(QUESTION), Say(SECOND), AwaitHangUp(timeout_s=10))
    async with speech_line(database, settings, steps) as stand:
        goodbye = Reply("Yes, we do. Goodbye!", ulaw_tone(0.8, 440), end_call=True)
        stand.realtime.replies.extend([Reply(ANSWER, ulaw_tone(1.2, 330)), goodbye])
        result, stored = await call(stand, database)

    greeting = stored.transcript[0]
    assert said(stored)[1:] == [
        ("user", QUESTION),
        ("assistant", ANSWER),
        ("user", SECOND),
        ("assistant", goodbye.text),
    ]
    assert greeting.role == "assistant"
    assert stored.end_reason == "agent-ended"
    assert result.server_hung_up
    [session] = stand.realtime.sessions
    assert session.path == f"/v1/realtime?model={MODEL}"
    config = session.config
    assert config["instructions"] == PROMPT
    assert config["max_output_tokens"] == 500
    assert config["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert config["audio"]["output"] == {"format": {"type": "audio/pcmu"}, "voice": "marin"}
    assert config["audio"]["input"]["transcription"]["model"] == "gpt-4o-mini-transcribe"
    assert config["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": "auto",
        "create_response": True,
        "interrupt_response": False,
    }
    assert [tool["name"] for tool in config["tools"]] == ["end_call"]
    # The model was told the greeting the caller heard, as text.
    assert session.items == [
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": greeting.text}]}
    ]  # fmt: skip
    # Pass-through both ways: the caller's μ-law reached the model byte for byte, and the
    # model's reached the caller.
    assert bytes(session.received) in bytes(result.caller_audio)
    assert stand.realtime.replies == type(stand.realtime.replies)()
    assert bytes(result.agent_audio).find(ulaw_tone(1.2, 330)[:8000]) >= 0
    metrics = stored.transcript[2].metrics
    assert metrics is not None
    assert metrics["model_first_audio_ms"] <= metrics["first_audio_ms"]
    assert metrics["endpointing_ms"] <= metrics["model_first_audio_ms"]
    assert metrics["prompt_tokens"] == 120
    assert metrics["completion_tokens"] == 80
    assert metrics["audio_out_s"] == 1.2
    assert 0.5 < metrics["audio_in_s"] < 3
    assert result.turns[0].reply_latency_ms is not None


async def test_barge_in_clears_cancels_and_truncates_at_what_the_caller_heard(
    database: Db, settings: Settings
) -> None:
    steps = (
        Say(QUESTION),
        Say("Stop. Wait a moment.", when="during-agent", delay_ms=1000),
        HangUp(when="after-agent"),
    )
    long_audio = ulaw_tone(8.0, 330)
    async with speech_line(database, settings, steps) as stand:
        stand.realtime.replies.append(Reply(LONG, long_audio))
        stand.realtime.delta_delay_s = 0.1  # twice real time: still speaking at the cut
        result, stored = await call(stand, database)

    assert result.clears >= 1
    [session] = stand.realtime.sessions
    assert session.cancelled == 1
    [truncate] = session.truncates
    assert truncate["item_id"] == session.responses[0]
    assert truncate["content_index"] == 0
    # What the simulated Twilio played of the answer, byte for byte, before the clear.
    agent_audio = bytes(result.agent_audio)
    start = agent_audio.find(long_audio[:1600])
    played = 0
    while agent_audio[start + played : start + played + 160] == long_audio[played : played + 160]:
        played += 160
    played_ms = played / 8
    # Heard = the pieces whose marks came back: all of it but the piece playing at the cut.
    assert played_ms - 200 <= truncate["audio_end_ms"] <= played_ms
    assert truncate["audio_end_ms"] % 200 == 0
    cut = [entry for entry in stored.transcript if entry.interrupted]
    assert len(cut) == 1
    assert LONG.startswith(cut[0].text)
    assert 0 < len(cut[0].text) < len(LONG)
    assert ("user", "Stop. Wait a moment.") in said(stored)


async def test_a_dropped_socket_is_answered_with_the_fallback_and_reopened_with_the_conversation(
    database: Db, settings: Settings
) -> None:
    steps = (Say(QUESTION), Say(SECOND))
    async with speech_line(database, settings, steps) as stand:
        stand.realtime.drop_after_response = 1  # once the first answer is all sent
        result, stored = await call(stand, database)

    assert len(stand.realtime.sessions) == 2
    fallback = [entry for entry in stored.transcript if entry.text == FALLBACK_TEXT]
    assert len(fallback) == 1
    assert fallback[0].error is not None
    reopened = stand.realtime.sessions[1]
    told = [(item["role"], item["content"][0]["text"]) for item in reopened.items]
    assert ("user", QUESTION) in told
    assert ("assistant", ANSWER) in told
    assert said(stored)[-2:] == [("user", SECOND), ("assistant", ANSWER)]
    assert stored.status == "completed"
    assert result.turns[-1].reply_latency_ms is not None


async def test_a_rate_limited_connect_is_answered_with_the_fallback_and_tried_again(
    database: Db, settings: Settings
) -> None:
    async with speech_line(database, settings, (Say(QUESTION),)) as stand:
        stand.realtime.refusals.append(429)
        result, stored = await call(stand, database)

    assert stand.realtime.refused_paths == [f"/v1/realtime?model={MODEL}"]
    [fallback] = [entry for entry in stored.transcript if entry.text == FALLBACK_TEXT]
    assert fallback.error is not None
    assert "429" in fallback.error
    assert said(stored)[-2:] == [("user", QUESTION), ("assistant", ANSWER)]
    assert result.turns[0].reply_latency_ms is not None


async def test_a_server_error_event_is_answered_with_the_fallback_and_a_second_ends_the_call(
    database: Db, settings: Settings
) -> None:
    steps = (Say(QUESTION), Say(SECOND), AwaitHangUp(timeout_s=10))
    async with speech_line(database, settings, steps) as stand:
        stand.realtime.fail_response = 1
        stand.realtime.refusals.extend([None, 429])  # the reopened session fails too: goodbye
        result, stored = await call(stand, database)

    assert [e.text for e in stored.transcript if e.role == "assistant"][1:] == [
        FALLBACK_TEXT,
        SPEECH_GOODBYE_TEXT,
    ]
    assert stored.end_reason == "conversation-failed"
    assert stored.status == "completed"
    assert result.server_hung_up
