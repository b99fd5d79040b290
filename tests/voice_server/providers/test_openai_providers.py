"""The OpenAI providers against local servers that speak OpenAI's protocols.

The real `openai` client is pointed at the stand-ins of `openai_fakes` by `base_url` and
`websocket_base_url`; nothing in the client is patched. What every implementation owes its seam
is checked in `tests/voice_server/providers/`; here, what is OpenAI's own: the requests sent,
retries and Retry-After, timeouts, usage and tool calls, the Realtime session's configuration.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
import wave
from collections.abc import Sequence
from datetime import date
from typing import Literal, cast

import httpx2
import pytest
from openai.resources.realtime.realtime import AsyncRealtimeConnection

from media.codec import FRAME_BYTES
from tests.voice_server.conftest import logged
from tests.voice_server.openai_fakes import (
    HANG,
    TUNING,
    FakeOpenAiHttp,
    FakeRealtime,
    HttpFailure,
    text_deltas,
    tool_call_deltas,
)
from voice_server.call.speech_audio import ulaw_frames
from voice_server.providers.audio_backlog import AudioBacklog
from voice_server.providers.base import (
    ChatMessage,
    LlmRequest,
    LlmUsage,
    ProviderError,
    SttOptions,
    SttResult,
    SttSession,
    ToolCall,
    ToolSpec,
    TtsRequest,
)
from voice_server.providers.openai_clients import OpenAiClients, OpenAiEndpoint
from voice_server.providers.openai_errors import retry_after_seconds
from voice_server.providers.openai_llm import ChatOptions, OpenAiLanguageModel
from voice_server.providers.openai_registry import (
    OpenAiProviders,
    check_model,
    openai_defaults,
)
from voice_server.providers.openai_stt import (
    QUIET_APPEND_FRAMES,
    SPEECH_APPEND_FRAMES,
    RealtimeSttSession,
)
from voice_server.providers.openai_tts import OpenAiTextToSpeech

QUICK_S = 3.0  # what "fails fast" means here: far below a 120 s Retry-After or a read timeout


def chat_request(
    *, temperature: float = 0.7, max_tokens: int = 300, tools: Sequence[ToolSpec] = ()
) -> LlmRequest:
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]
    return LlmRequest("gpt-5.4-mini", messages, temperature, max_tokens, tools)


async def collect(llm: OpenAiLanguageModel, request: LlmRequest, usage: LlmUsage) -> list[str]:
    return [token async for token in llm.stream(request, usage)]


# --- LLM -------------------------------------------------------------------------------------


async def test_llm_streams_text_and_fills_usage(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    usage = LlmUsage()
    tokens = await collect(
        openai_providers.llm, chat_request(temperature=0.2, max_tokens=50), usage
    )

    assert tokens == ["Hello", " there."]
    assert (usage.prompt_tokens, usage.completion_tokens) == (12, 3)
    assert usage.tool_calls == []
    [sent] = http_fake.requests
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.body["model"] == "gpt-5.4-mini"
    assert sent.body["temperature"] == 0.2
    assert sent.body["max_completion_tokens"] == 50
    assert "max_tokens" not in sent.body
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]


async def test_llm_for_compatible_servers_sends_max_tokens(http_fake: FakeOpenAiHttp) -> None:
    openai_providers = openai_defaults(
        "test-key",
        f"{http_fake.base_url}/v1",
        chat=ChatOptions(max_tokens_field="max_tokens", include_usage=False),
    )
    try:
        usage = LlmUsage()
        assert await collect(openai_providers.llm, chat_request(max_tokens=40), usage) == [
            "Hello",
            " there.",
        ]
    finally:
        await openai_providers.aclose()

    [sent] = http_fake.requests
    assert sent.body["max_tokens"] == 40
    assert "max_completion_tokens" not in sent.body
    assert "stream_options" not in sent.body
    assert (usage.prompt_tokens, usage.completion_tokens) == (0, 0)


async def test_llm_offers_tools_and_reassembles_streamed_tool_calls(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    hang_up = ToolSpec(name="end_call", description="End the call.")
    http_fake.chat_deltas = [
        *text_deltas("Goodbye."),
        *tool_call_deltas(0, "call_a", "end_call", '{"rea', 'son": "done"}'),
        *tool_call_deltas(1, "call_b", "transfer_call", "{}"),
    ]
    http_fake.finish_reason = "tool_calls"
    usage = LlmUsage()
    tokens = await collect(openai_providers.llm, chat_request(tools=[hang_up]), usage)

    assert tokens == ["Goodbye."]
    assert usage.tool_calls == [
        ToolCall(name="end_call", arguments='{"reason": "done"}'),
        ToolCall(name="transfer_call", arguments="{}"),
    ]
    assert http_fake.requests[0].body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "end_call",
                "description": "End the call.",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]


async def test_a_429_with_a_long_retry_after_fails_at_once(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    http_fake.failures.append(HttpFailure(429, {"retry-after": "120"}))
    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        await collect(openai_providers.llm, chat_request(), LlmUsage())

    assert time.monotonic() - started < QUICK_S
    assert raised.value.retryable
    assert "429" in str(raised.value)
    assert len(http_fake.requests) == 1


async def test_a_server_error_is_retried_once_then_reported(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    http_fake.failures.extend([HttpFailure(500), HttpFailure(503)])
    with pytest.raises(ProviderError) as raised:
        await collect(openai_providers.llm, chat_request(), LlmUsage())

    assert raised.value.retryable
    assert len(http_fake.requests) == 2


async def test_one_server_error_is_absorbed_by_the_retry(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    http_fake.failures.append(HttpFailure(500))
    assert await collect(openai_providers.llm, chat_request(), LlmUsage()) == ["Hello", " there."]
    assert len(http_fake.requests) == 2


async def test_a_hanging_server_times_out_quickly(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    http_fake.failures.extend([HANG, HANG])
    started = time.monotonic()
    with pytest.raises(ProviderError, match="timed out") as raised:
        await collect(openai_providers.llm, chat_request(), LlmUsage())

    assert time.monotonic() - started < QUICK_S
    assert raised.value.retryable
    assert http_fake.abandoned.is_set()


# --- TTS -------------------------------------------------------------------------------------


async def test_tts_streams_24khz_pcm(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    request = TtsRequest(model="gpt-4o-mini-tts", voice="marin", text="Hello there.")
    pieces = [piece async for piece in openai_providers.tts.stream(request)]

    assert {rate for rate, _ in pieces} == {24_000}
    assert b"".join(pcm for _, pcm in pieces) == http_fake.speech_pcm
    [sent] = http_fake.requests
    assert sent.body == {
        "model": "gpt-4o-mini-tts",
        "voice": "marin",
        "input": "Hello there.",
        "response_format": "pcm",
    }


async def test_tts_speech_becomes_whole_ulaw_frames(openai_providers: OpenAiProviders) -> None:
    request = TtsRequest(model="gpt-4o-mini-tts", voice="marin", text="Hello there.")
    runs = [run async for run in ulaw_frames(openai_providers.tts, request)]

    assert all(len(run) % FRAME_BYTES == 0 for run in runs)
    assert sum(map(len, runs)) == 13 * FRAME_BYTES  # 0.256 s at 8 kHz, padded to 20 ms frames


@pytest.mark.parametrize(("model", "sent"), [("gpt-4o-mini-tts", True), ("tts-1-hd", False)])
async def test_tts_instructions_only_where_the_model_takes_them(
    http_fake: FakeOpenAiHttp, model: str, sent: bool
) -> None:
    clients = OpenAiClients()
    tts = OpenAiTextToSpeech(clients.live(_endpoint(http_fake)), instructions="Warmly.")
    try:
        [_ async for _ in tts.stream(TtsRequest(model=model, voice="alloy", text="Hi."))]
    finally:
        await clients.aclose()

    assert ("instructions" in http_fake.requests[0].body) is sent


async def test_a_tts_429_fails_at_once(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    http_fake.failures.append(HttpFailure(429, {"retry-after-ms": "60000"}))
    request = TtsRequest(model="gpt-4o-mini-tts", voice="marin", text="Hi.")
    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        [_ async for _ in openai_providers.tts.stream(request)]

    assert time.monotonic() - started < QUICK_S
    assert raised.value.retryable


async def test_a_stream_that_stalls_midway_times_out(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp
) -> None:
    http_fake.delay_s = 2 * TUNING.read_s
    tts_request = TtsRequest(model="gpt-4o-mini-tts", voice="marin", text="Hi.")
    for stream in (
        openai_providers.tts.stream(tts_request),
        openai_providers.llm.stream(chat_request(), LlmUsage()),
    ):
        started = time.monotonic()
        with pytest.raises(ProviderError, match="timed out"):
            [_ async for _ in stream]
        assert time.monotonic() - started < QUICK_S


# --- STT: Realtime transcription session ----------------------------------------------------


def frames(count: int, start: int = 0) -> list[bytes]:
    """Distinct 20 ms μ-law frames, so the order of what arrives can be checked."""
    return [bytes([(start + n) % 256]) * FRAME_BYTES for n in range(count)]


async def next_results(session: SttSession, count: int) -> list[SttResult]:
    results = session.results()
    async with asyncio.timeout(QUICK_S):
        return [await anext(results) for _ in range(count)]


def appended_audio(fake: FakeRealtime) -> bytes:
    chunks = [e["audio"] for e in fake.events if e["type"] == "input_audio_buffer.append"]
    return b"".join(base64.b64decode(chunk) for chunk in chunks)


HELLO_THERE = [
    SttResult("Hello", final=False),
    SttResult("Hello there", final=False),
    SttResult("Hello there", final=True),
]


async def one_second_said(session: SttSession) -> list[SttResult]:
    """What the Realtime stand-in says of one second of audio (one utterance): its partials
    and final."""
    for frame in frames(50):
        session.push_audio(frame, speech=False)
    return await next_results(session, 3)


async def test_realtime_session_is_configured_for_twilio_audio(
    openai_providers: OpenAiProviders, realtime_fake: FakeRealtime
) -> None:
    realtime_fake.transcripts.append("Hello there")
    async with openai_providers.stt.open_session(
        SttOptions(model="gpt-4o-mini-transcribe")
    ) as session:
        results = await one_second_said(session)

    assert results == HELLO_THERE
    assert realtime_fake.paths == ["/v1/realtime?intent=transcription"]
    assert realtime_fake.authorizations == ["Bearer test-key"]
    audio_input = realtime_fake.sessions[0]["audio"]["input"]
    assert realtime_fake.sessions[0]["type"] == "transcription"
    assert audio_input["format"] == {"type": "audio/pcmu"}
    assert audio_input["transcription"] == {"model": "gpt-4o-mini-transcribe", "language": "en"}
    assert audio_input["turn_detection"]["type"] == "server_vad"
    assert audio_input["turn_detection"]["silence_duration_ms"] == 400
    assert appended_audio(realtime_fake) == b"".join(frames(50))
    assert isinstance(session, RealtimeSttSession)
    assert not session.speaking
    assert session.speech_stopped_at is not None
    async with asyncio.timeout(QUICK_S):  # leaving the block closed the WebSocket
        await realtime_fake.closed.wait()


async def test_malformed_realtime_events_are_logged_and_skipped(
    openai_providers: OpenAiProviders, realtime_fake: FakeRealtime, caplog: pytest.LogCaptureFixture
) -> None:
    realtime_fake.transcripts.append("Hello there")
    realtime_fake.raw_before_transcripts = [
        "not json",
        "[1, 2]",
        '{"type": "conversation.item.input_audio_transcription.delta", "item_id": 7}',
        '{"type": "error", "error": "not an object"}',
    ]
    async with openai_providers.stt.open_session(SttOptions(model="gpt-transcribe")) as session:
        results = await one_second_said(session)

    assert results == HELLO_THERE
    assert len(logged(caplog, "event that is not JSON ignored")) == 1
    assert len(logged(caplog, "event that is not an object ignored")) == 1
    assert logged(caplog, "session reported an error")[0]["error"] == ""


async def test_server_turn_detection_is_asked_with_the_agents_end_silence(
    openai_providers: OpenAiProviders, realtime_fake: FakeRealtime
) -> None:
    realtime_fake.transcripts.append("Hello there")
    options = SttOptions(model="gpt-4o-mini-transcribe", end_silence_ms=750)
    async with openai_providers.stt.open_session(options) as session:
        for frame in frames(50):
            session.push_audio(frame, speech=False)
        await next_results(session, 3)

    turn_detection = realtime_fake.sessions[0]["audio"]["input"]["turn_detection"]
    assert turn_detection == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 750,
    }


@pytest.mark.parametrize("eagerness", ["low", "auto"])
async def test_semantic_turn_detection_is_asked_with_the_agents_eagerness(
    openai_providers: OpenAiProviders,
    realtime_fake: FakeRealtime,
    eagerness: Literal["low", "auto"],
) -> None:
    realtime_fake.transcripts.append("Hello there")
    options = SttOptions(
        model="gpt-4o-mini-transcribe", turn_detection="semantic_vad", eagerness=eagerness
    )
    async with openai_providers.stt.open_session(options) as session:
        for frame in frames(50):
            session.push_audio(frame, speech=False)
        results = await next_results(session, 3)

    assert results[-1] == SttResult("Hello there", final=True)
    turn_detection = realtime_fake.sessions[0]["audio"]["input"]["turn_detection"]
    assert turn_detection == {"type": "semantic_vad", "eagerness": eagerness}


async def test_realtime_session_transcribes_utterance_after_utterance(
    openai_providers: OpenAiProviders, realtime_fake: FakeRealtime
) -> None:
    realtime_fake.transcripts.extend(["one", "two"])
    async with openai_providers.stt.open_session(SttOptions(model="gpt-transcribe")) as session:
        results = session.results()
        finals = []
        for utterance in range(2):
            for frame in frames(50, start=utterance * 50):
                session.push_audio(frame, speech=False)
            async with asyncio.timeout(QUICK_S):
                finals.append(await anext(r async for r in results if r.final))

    assert [result.text for result in finals] == ["one", "two"]
    assert [u.audio_bytes for u in realtime_fake.utterances] == [8000, 8000]
    assert appended_audio(realtime_fake) == b"".join(frames(100))


async def test_manual_commit_models_follow_the_calls_endpointing(
    openai_providers: OpenAiProviders, realtime_fake: FakeRealtime
) -> None:
    realtime_fake.transcripts.append("hi")
    async with openai_providers.stt.open_session(
        SttOptions(model="gpt-realtime-whisper")
    ) as session:
        session.speech_ended()  # nothing appended yet: an empty result, no commit
        session.speech_started()
        for frame in frames(10):
            session.push_audio(frame, speech=False)
        session.speech_ended()
        results = await next_results(session, 3)

    assert results == [SttResult("", final=True), SttResult("hi", False), SttResult("hi", True)]
    assert realtime_fake.sessions[0]["audio"]["input"]["turn_detection"] is None
    commits = [e for e in realtime_fake.events if e["type"] == "input_audio_buffer.commit"]
    assert len(commits) == 1
    assert realtime_fake.utterances[0].audio_bytes == 10 * FRAME_BYTES


def unconnected_session(backlog: AudioBacklog, *, manual_commit: bool) -> RealtimeSttSession:
    """A session whose queueing is watched through its backlog; it never reaches a socket."""
    return RealtimeSttSession(cast(AsyncRealtimeConnection, None), manual_commit, backlog)


async def nothing_queued(backlog: AudioBacklog) -> bool:
    """Whether the session holds everything pushed so far: our end marker comes out first."""
    backlog.put_end()
    return await backlog.take() is None


async def test_quiet_frames_are_held_for_one_append_and_the_quiet_in_a_turn_goes_at_once() -> None:
    backlog = AudioBacklog(5000, recogniser="test")
    session = unconnected_session(backlog, manual_commit=False)
    quiet = frames(QUIET_APPEND_FRAMES)
    for frame in quiet[:-1]:
        session.push_audio(frame, speech=False)
    assert await nothing_queued(backlog)

    session.push_audio(quiet[-1], speech=False)
    assert await backlog.take() == b"".join(quiet)

    held, in_turn = frames(2, start=10), frames(2, start=20)
    for frame in held:
        session.push_audio(frame, speech=False)
    session.speech_started()
    assert await backlog.take() == b"".join(held)
    assert await nothing_queued(backlog)
    for frame in in_turn:  # a pause, or the silence that may end the turn: frame by frame
        session.push_audio(frame, speech=False)
        assert await backlog.take() == frame


async def test_the_callers_voice_goes_three_frames_at_a_time_until_a_frame_without_it() -> None:
    backlog = AudioBacklog(5000, recogniser="test")
    session = unconnected_session(backlog, manual_commit=False)
    session.speech_started()
    voice = frames(SPEECH_APPEND_FRAMES + 1)
    for frame in voice[: SPEECH_APPEND_FRAMES - 1]:
        session.push_audio(frame, speech=True)
    assert await nothing_queued(backlog)

    session.push_audio(voice[SPEECH_APPEND_FRAMES - 1], speech=True)
    assert await backlog.take() == b"".join(voice[:SPEECH_APPEND_FRAMES])
    session.push_audio(voice[-1], speech=True)
    assert await nothing_queued(backlog)

    quiet = frames(1, start=30)[0]  # the voice stopped: what is held goes with it, at once
    session.push_audio(quiet, speech=False)
    assert await backlog.take() == voice[-1] + quiet


async def test_an_utterance_end_sends_the_held_frames_before_its_commit() -> None:
    backlog = AudioBacklog(5000, recogniser="test")
    session = unconnected_session(backlog, manual_commit=True)
    for frame in frames(2):
        session.push_audio(frame, speech=False)
    session.speech_ended()

    assert await backlog.take() == b"".join(frames(2))
    assert await backlog.take() is None


async def test_a_refused_websocket_becomes_a_provider_error(http_fake: FakeOpenAiHttp) -> None:
    openai_providers = openai_defaults(
        "test-key", f"{http_fake.base_url}/v1", websocket_base_url="ws://127.0.0.1:1/v1"
    )
    try:
        with pytest.raises(ProviderError) as raised:
            async with openai_providers.stt.open_session(SttOptions(model="gpt-transcribe")):
                pass
    finally:
        await openai_providers.aclose()

    assert raised.value.retryable


# --- STT: per-utterance HTTP fallback --------------------------------------------------------


async def test_whisper_transcribes_each_endpointed_utterance_over_http(
    openai_providers: OpenAiProviders, http_fake: FakeOpenAiHttp, realtime_fake: FakeRealtime
) -> None:
    http_fake.transcripts.append(" Hello there. ")
    async with openai_providers.stt.open_session(SttOptions(model="whisper-1")) as session:
        for frame in frames(20):  # silence before the onset: the last 15 frames are kept
            session.push_audio(frame, speech=False)
        session.speech_started()
        for frame in frames(30, start=20):
            session.push_audio(frame, speech=True)
        session.speech_ended()
        session.speech_ended()  # a turn with no speech: an empty result, no request
        results = await next_results(session, 2)

    assert results == [SttResult("Hello there.", final=True), SttResult("", final=True)]
    assert realtime_fake.paths == []
    [sent] = http_fake.requests
    assert sent.path == "/v1/audio/transcriptions"
    assert (sent.body["model"], sent.body["language"]) == ("whisper-1", "en")
    upload = sent.body["file"]
    assert (upload["filename"], upload["content_type"]) == ("utterance.wav", "audio/wav")
    with wave.open(io.BytesIO(upload["data"])) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() == 45 * FRAME_BYTES


# --- model names and client tuning -----------------------------------------------------------

TODAY = date(2026, 9, 1)


@pytest.mark.parametrize(
    ("field", "model", "blocking", "says"),
    [
        ("inferenceModel", "llama3.1:8b", False, "not an OpenAI model"),
        ("sttModel", "tts-1", True, "is a tts model, not a stt one"),
        ("ttsModel", "gpt-realtime-2", True, "is a realtime model, not a tts one"),
        ("inferenceModel", "gpt-realtime", False, "shuts it down on 2027-01-20"),
        ("inferenceModel", "gpt-4o-mini", False, "shuts it down on 2027-01-14"),
        ("ttsModel", "gpt-4o-mini-tts-2025-12-15", False, "deprecated"),
        ("inferenceModel", "o4-mini", False, "2026-10-23"),
    ],
)
def test_model_notices(field: str, model: str, blocking: bool, says: str) -> None:
    notice = check_model(field, model, today=TODAY)

    assert notice is not None
    assert notice.blocking is blocking
    assert says in notice.message


def test_a_shut_down_model_blocks() -> None:
    notice = check_model("inferenceModel", "o4-mini", today=date(2026, 10, 23))
    assert notice is not None
    assert notice.blocking
    assert "was shut down on 2026-10-23" in notice.message


@pytest.mark.parametrize(
    ("field", "model"),
    [
        ("inferenceModel", "gpt-5.5"),
        ("inferenceModel", "gpt-6-sol"),
        ("sttModel", "gpt-transcribe"),
        ("sttModel", "gpt-realtime-whisper"),
        ("inferenceModel", "gpt-realtime-2"),  # speech to speech
        ("inferenceModel", "gpt-realtime-2.1-mini"),
    ],
)
def test_current_models_need_no_notice(field: str, model: str) -> None:
    assert check_model(field, model, today=TODAY) is None


def test_retry_after_parsing() -> None:
    assert retry_after_seconds(httpx2.Headers({})) == 0
    assert retry_after_seconds(httpx2.Headers({"retry-after": "2"})) == 2
    assert retry_after_seconds(httpx2.Headers({"retry-after-ms": "250"})) == 0.25
    date_header = {"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"}
    assert retry_after_seconds(httpx2.Headers(date_header)) == float("inf")
    assert retry_after_seconds(httpx2.Headers({"retry-after": "1e999"})) == float("inf")


def _endpoint(fake: FakeOpenAiHttp) -> OpenAiEndpoint:
    return OpenAiEndpoint("test-key", f"{fake.base_url}/v1", tuning=TUNING)
