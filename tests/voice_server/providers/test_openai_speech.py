"""The speech-to-speech provider over OpenAI's Realtime API: the real `openai` client against
the local conversation stand-in, no network, no key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.voice_server.conftest import logged
from tests.voice_server.openai_fakes import TUNING
from tests.voice_server.realtime_conversation_fake import (
    FakeRealtimeConversation,
    Reply,
    error_event,
    serve_conversation,
)
from voice_server.providers.base import (
    AgentAudio,
    AgentText,
    CallerSpeech,
    ChatMessage,
    ProviderError,
    ResponseDone,
    SpeechEvent,
    SpeechOptions,
    ToolSpec,
)
from voice_server.providers.openai_registry import OpenAiProviders, openai_defaults

AUDIO = bytes(range(128, 256)) * 25  # 3 200 bytes of μ-law: 400 ms
OPTIONS = SpeechOptions(
    model="gpt-realtime-2",
    instructions="Be brief.",
    voice="nova",  # a speech endpoint voice the Realtime models do not have
    transcription_model="gpt-4o-mini-transcribe",
    max_output_tokens=9000,
    turn_detection="server_vad",
    end_silence_ms=900,
    tools=(ToolSpec("end_call", "End the call."),),
    history=(ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello, how can I help?")),
)


@pytest.fixture
async def realtime() -> AsyncIterator[FakeRealtimeConversation]:
    fake = FakeRealtimeConversation(lambda audio: "", Reply("Sure thing.", AUDIO))
    async with serve_conversation(fake):
        yield fake


@pytest.fixture
async def providers(realtime: FakeRealtimeConversation) -> AsyncIterator[OpenAiProviders]:
    defaults = openai_defaults(
        "test-key",
        "http://127.0.0.1:9/v1",
        websocket_base_url=realtime.websocket_base_url,
        tuning=TUNING,
    )
    yield defaults
    await defaults.aclose()


async def until_done(events: AsyncIterator[SpeechEvent]) -> list[SpeechEvent]:
    seen: list[SpeechEvent] = []
    async for event in events:
        seen.append(event)
        if isinstance(event, ResponseDone):
            return seen
    return seen


async def test_a_session_is_configured_from_the_agent_and_told_the_conversation(
    realtime: FakeRealtimeConversation, providers: OpenAiProviders
) -> None:
    async with providers.speech.open_session(OPTIONS) as conversation:
        await conversation.respond("Say hello.")
        events = await until_done(conversation.events())

    [session] = realtime.sessions
    assert session.path == "/v1/realtime?model=gpt-realtime-2"
    config: dict[str, Any] = session.config
    assert config["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "silence_duration_ms": 900,
        "create_response": True,
        "interrupt_response": False,
    }
    assert config["audio"]["output"]["voice"] == "marin"
    assert config["max_output_tokens"] == 4096
    assert config["audio"]["input"]["transcription"] == {
        "model": "gpt-4o-mini-transcribe",
        "language": "en",
    }
    assert "temperature" not in config  # the GA session has none
    assert [(i["role"], i["content"][0]) for i in session.items] == [
        ("user", {"type": "input_text", "text": "Hi"}),
        ("assistant", {"type": "output_text", "text": "Hello, how can I help?"}),
    ]
    audio = b"".join(e.ulaw for e in events if isinstance(e, AgentAudio))
    assert audio == AUDIO  # μ-law from the model, untouched
    assert "".join(e.delta for e in events if isinstance(e, AgentText)) == "Sure thing."
    assert events[-1] == ResponseDone("completed", input_tokens=120, output_tokens=80)


async def test_a_cut_with_no_response_running_is_survived(
    realtime: FakeRealtimeConversation, providers: OpenAiProviders
) -> None:
    async with providers.speech.open_session(OPTIONS) as conversation:
        await conversation.respond()
        await until_done(conversation.events())
        await conversation.cut(realtime.sessions[0].responses[0], 200)
        await conversation.respond()  # answered after the truncate: it has been handled
        await until_done(conversation.events())

    [session] = realtime.sessions
    assert session.cancels == 1  # refused by the server: nothing was running
    assert [(t["item_id"], t["audio_end_ms"]) for t in session.truncates] == [
        (session.responses[0], 200)
    ]


async def test_a_request_error_is_survived(
    realtime: FakeRealtimeConversation, providers: OpenAiProviders
) -> None:
    started = {"type": "input_audio_buffer.speech_started", "audio_start_ms": 5, "item_id": "i"}
    refused = error_event("invalid_request_error", "response_cancel_not_active")
    realtime.instead.append([refused, started])
    async with providers.speech.open_session(OPTIONS) as conversation:
        await conversation.respond()
        events = conversation.events()
        first = await anext(events)
        await events.aclose()

    assert first == CallerSpeech(started=True, audio_ms=5)


async def test_events_with_mistyped_fields_are_read_leniently_and_bad_audio_is_skipped(
    realtime: FakeRealtimeConversation, providers: OpenAiProviders, caplog: pytest.LogCaptureFixture
) -> None:
    realtime.instead.append(
        [
            {"type": "response.output_audio.delta", "item_id": "i", "delta": "not base64!"},
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": "soon"},
            {"type": "response.done", "response": {"status": "completed", "usage": None}},
        ]
    )
    async with providers.speech.open_session(OPTIONS) as conversation:
        await conversation.respond()
        events = await until_done(conversation.events())

    assert events == [
        CallerSpeech(started=True, audio_ms=0),
        ResponseDone("completed", input_tokens=0, output_tokens=0),
    ]
    assert len(logged(caplog, "audio delta that is not base64 ignored")) == 1


@pytest.mark.parametrize(
    ("events", "says"),
    [
        ([error_event("server_error", None)], "server_error"),
        ([error_event("invalid_request_error", "rate_limit_exceeded")], "rate_limit_exceeded"),
        (
            [
                {
                    "type": "response.done",
                    "response": {
                        "id": "resp_1",
                        "status": "failed",
                        "status_details": {"type": "failed", "error": {"code": "rate_limited"}},
                    },
                }
            ],
            "response failed",
        ),
    ],
    ids=["server-error", "rate-limit", "failed-response"],
)
async def test_server_failures_end_the_session_with_a_retryable_error(
    realtime: FakeRealtimeConversation,
    providers: OpenAiProviders,
    events: list[dict[str, Any]],
    says: str,
) -> None:
    realtime.instead.append(events)
    async with providers.speech.open_session(OPTIONS) as conversation:
        await conversation.respond()
        with pytest.raises(ProviderError, match=says) as raised:
            await until_done(conversation.events())

    assert raised.value.retryable


async def test_a_refused_handshake_is_a_retryable_provider_error(
    realtime: FakeRealtimeConversation, providers: OpenAiProviders
) -> None:
    realtime.refusals.append(429)
    with pytest.raises(ProviderError, match="HTTP 429") as raised:
        async with providers.speech.open_session(OPTIONS):
            pass

    assert raised.value.retryable
    assert realtime.sessions == []
