"""The Realtime stand-ins as the benchmark serves them: both sessions on one base URL, routed by
the connect's query, and a conversation that answers after a fixed latency at a set pace and
keeps nothing. The real `openai` client, no network, no key."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from media.codec import SAMPLE_RATE, pcm16_to_ulaw
from tests.voice_server.openai_fakes import TUNING, FakeRealtime, serve_realtime, voiced_tone
from tests.voice_server.realtime_conversation_fake import (
    FakeRealtimeConversation,
    RealtimeRoutes,
    Reply,
)
from voice_server.providers.base import (
    AgentAudio,
    CallerSpeech,
    ResponseDone,
    SpeechOptions,
    SttOptions,
)
from voice_server.providers.openai_registry import OpenAiProviders, openai_defaults

OPTIONS = SpeechOptions(
    model="gpt-realtime-2",
    instructions="Be brief.",
    voice="marin",
    transcription_model="gpt-4o-mini-transcribe",
    max_output_tokens=500,
)
ANSWER_AUDIO = bytes(range(128, 256)) * 50  # 6 400 bytes of μ-law: 800 ms, four deltas


@pytest.fixture
async def routes() -> AsyncIterator[RealtimeRoutes]:
    conversation = FakeRealtimeConversation(lambda audio: "Hi", Reply("Hello.", ANSWER_AUDIO))
    async with serve_realtime(RealtimeRoutes(FakeRealtime(), conversation)) as served:
        yield served


@pytest.fixture
async def providers(routes: RealtimeRoutes) -> AsyncIterator[OpenAiProviders]:
    base = routes.websocket_base_url
    defaults = openai_defaults("k", "http://127.0.0.1:9/v1", websocket_base_url=base, tuning=TUNING)
    yield defaults
    await defaults.aclose()


async def test_transcription_and_conversation_sessions_share_one_base_url(
    routes: RealtimeRoutes, providers: OpenAiProviders
) -> None:
    async with providers.stt.open_session(SttOptions(model="gpt-4o-mini-transcribe")):
        pass
    async with providers.speech.open_session(OPTIONS):
        pass

    assert routes.transcription.paths == ["/v1/realtime?intent=transcription"]
    assert [s.path for s in routes.conversation.sessions] == ["/v1/realtime?model=gpt-realtime-2"]


async def test_the_bench_conversation_answers_late_at_its_pace_and_keeps_nothing(
    routes: RealtimeRoutes, providers: OpenAiProviders
) -> None:
    fake = routes.conversation
    fake.first_audio_delay_s = 0.15
    fake.delta_delay_s = 0.05
    fake.record = False
    arrivals: list[tuple[float, object]] = []
    async with providers.speech.open_session(OPTIONS) as conversation:
        speech = pcm16_to_ulaw(voiced_tone(0.4, SAMPLE_RATE))
        conversation.push_audio(speech + bytes([0xFF]) * 8000)  # then 1 s of silence
        async for event in conversation.events():
            arrivals.append((time.monotonic(), event))
            if isinstance(event, ResponseDone):
                break

    [stopped] = [t for t, e in arrivals if isinstance(e, CallerSpeech) and not e.started]
    audio = [(t, e.ulaw) for t, e in arrivals if isinstance(e, AgentAudio)]
    assert b"".join(ulaw for _, ulaw in audio) == ANSWER_AUDIO
    assert audio[0][0] - stopped >= 0.15  # the model's fixed latency
    assert audio[-1][0] - audio[0][0] >= 3 * 0.05  # four deltas at its pace, not at once
    assert arrivals[-1][1] == ResponseDone("completed", input_tokens=120, output_tokens=80)
    assert fake.sessions == []
