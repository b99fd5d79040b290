"""Speech to speech over OpenAI: one Realtime conversation session per call (docs/openai.md §8).

The socket is opened with the agent's Realtime model and configured for `audio/pcmu` both ways,
so Twilio's μ-law goes in unchanged and the model's audio comes back ready for Twilio. The
server ends the caller's turns (`server_vad` or `semantic_vad`) and answers them itself
(`create_response`), but never cuts its own response (`interrupt_response: false`): the call
cancels it and truncates the item at the millisecond the caller heard (`cut`), which only the
call knows from Twilio's marks. The GA session has no temperature (§8).

One failure channel: a socket that drops, a send that fails, an `error` event that is not a
request error of ours (a server error, a rate limit) or a `response.done` that failed all end
`events()` with `ProviderError`. A request error (`invalid_request_error`: a cancel that raced
the response's end) is logged and the session goes on, as the server does.
"""

from __future__ import annotations

import asyncio
import binascii
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import get_args, get_type_hints

import openai
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import (
    ConversationItemParam,
    RealtimeAudioConfigOutputParam,
    RealtimeAudioInputTurnDetectionParam,
    RealtimeResponseCreateParamsParam,
    RealtimeSessionCreateRequestParam,
)
from websockets.exceptions import WebSocketException

from voice_server.log import get_logger
from voice_server.providers.audio_backlog import AudioBacklog
from voice_server.providers.base import (
    AgentAudio,
    AgentText,
    CallerSpeech,
    CallerText,
    ChatMessage,
    ProviderError,
    ResponseDone,
    SpeechEvent,
    SpeechOptions,
    ToolCall,
)
from voice_server.providers.openai_errors import provider_error
from voice_server.providers.openai_stt import append_audio, iso_language
from voice_server.providers.realtime_events import Event, number, part, server_events, text
from voice_server.providers.workers import running

log = get_logger(__name__)

PROVIDER = "openai-realtime"
_FAILURES = (openai.OpenAIError, WebSocketException, OSError)
# The voices a Realtime session speaks with, as the SDK lists them; another `ttsVoice` (one of
# the speech endpoint's own, such as "nova") is replaced by DEFAULT_VOICE.
REALTIME_VOICES = frozenset(
    name
    for arg in get_args(get_type_hints(RealtimeAudioConfigOutputParam)["voice"])
    for name in get_args(arg)
    if isinstance(name, str)
)
DEFAULT_VOICE = "marin"
MAX_OUTPUT_TOKENS = 4096  # the session's upper bound (§8)


class OpenAiSpeechToSpeech:
    """`SpeechToSpeech` over a Realtime conversation session, one WebSocket per call."""

    def __init__(
        self, client: AsyncOpenAI, *, connect_timeout_s: float = 3.0, backlog_ms: int = 5000
    ) -> None:
        self._client = client
        self._connect_timeout_s = connect_timeout_s
        self._backlog_ms = backlog_ms

    @asynccontextmanager
    async def open_session(self, options: SpeechOptions) -> AsyncIterator[RealtimeConversation]:
        async with AsyncExitStack() as stack:
            manager = self._client.realtime.connect(model=options.model)
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    connection = await stack.enter_async_context(manager)
                await connection.session.update(session=session_config(options))
                for message in options.history:
                    await connection.conversation.item.create(item=_text_item(message))
            except _FAILURES as error:
                raise provider_error(error, PROVIDER) from error
            backlog = AudioBacklog(self._backlog_ms, recogniser=PROVIDER)
            conversation = RealtimeConversation(connection, backlog)
            async with running(conversation.send_audio()):
                yield conversation


def session_config(options: SpeechOptions) -> RealtimeSessionCreateRequestParam:
    voice = options.voice if options.voice in REALTIME_VOICES else DEFAULT_VOICE
    if voice != options.voice:
        log.warning("voice not offered by Realtime models; using another", voice=options.voice)
    return {
        "type": "realtime",
        "instructions": options.instructions,
        "output_modalities": ["audio"],  # audio with its transcript
        "max_output_tokens": min(options.max_output_tokens, MAX_OUTPUT_TOKENS),
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {
                    "model": options.transcription_model,
                    "language": iso_language(options.language),
                },
                "noise_reduction": {"type": "near_field"},
                "turn_detection": _turn_detection(options),
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": voice},
        },
        "tools": [
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": dict(tool.parameters),
            }
            for tool in options.tools
        ],
        "tool_choice": "auto",
    }


def _turn_detection(options: SpeechOptions) -> RealtimeAudioInputTurnDetectionParam:
    if options.turn_detection == "semantic_vad":
        return {
            "type": "semantic_vad",
            "eagerness": options.eagerness,
            "create_response": True,
            "interrupt_response": False,
        }
    return {
        "type": "server_vad",
        "silence_duration_ms": options.end_silence_ms,
        "create_response": True,
        "interrupt_response": False,
    }


def _audio(delta: str) -> bytes:
    """An audio delta's μ-law; empty when it is not base64 (logged)."""
    try:
        return binascii.a2b_base64(delta, strict_mode=True)
    except ValueError:
        log.warning("Realtime audio delta that is not base64 ignored", size=len(delta))
        return b""


def _text_item(message: ChatMessage) -> ConversationItemParam:
    if message.role == "assistant":
        return {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": message.content}],
        }
    if message.role == "system":
        return {
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": message.content}],
        }
    return {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": message.content}],
    }


class RealtimeConversation:
    """One call's conversation session; opened by `OpenAiSpeechToSpeech.open_session`."""

    def __init__(self, connection: AsyncRealtimeConnection, backlog: AudioBacklog) -> None:
        self._connection = connection
        self._backlog = backlog
        self._failure: ProviderError | None = None

    def push_audio(self, ulaw: bytes) -> None:
        if self._failure is None:
            self._backlog.put_audio(ulaw)

    async def send_audio(self) -> None:
        """Forward queued audio for as long as the session is open."""
        while True:
            if audio := await self._backlog.take():
                await self._send(append_audio(self._connection, audio))

    async def respond(self, instructions: str | None = None) -> None:
        response: RealtimeResponseCreateParamsParam = {}
        if instructions is not None:
            response["instructions"] = instructions
        await self._send(self._connection.response.create(response=response))

    async def cut(self, item_id: str | None, heard_ms: int) -> None:
        # Always: a response the server has started may not have been announced yet. With
        # nothing in flight the server answers with a request error, which is survived (§8).
        await self._send(self._connection.response.cancel())
        if item_id is not None:
            truncate = self._connection.conversation.item.truncate
            await self._send(truncate(item_id=item_id, content_index=0, audio_end_ms=heard_ms))

    async def remember(self, message: ChatMessage) -> None:
        await self._send(self._connection.conversation.item.create(item=_text_item(message)))

    async def events(self) -> AsyncGenerator[SpeechEvent, None]:
        try:
            async for event in server_events(self._connection, PROVIDER):
                if (mapped := self._map(event)) is not None:
                    yield mapped
        except _FAILURES as error:
            raise self._failure or provider_error(error, PROVIDER) from error
        raise self._failure or ProviderError("the server ended the session", provider=PROVIDER)

    async def _send(self, sending: Awaitable[None]) -> None:
        """Send one event; a failure closes the socket, so `events()` raises it."""
        try:
            await sending
        except _FAILURES as error:
            await self._fail(provider_error(error, PROVIDER))

    async def _fail(self, error: ProviderError) -> None:
        if self._failure is None:
            self._failure = error
            await self._connection.close()

    def _map(self, event: Event) -> SpeechEvent | None:
        """What the call needs of one server event (read raw: `realtime_events`)."""
        kind = event.get("type")
        mapped: SpeechEvent | None = None
        if kind == "response.output_audio.delta":
            if ulaw := _audio(text(event, "delta")):
                mapped = AgentAudio(text(event, "item_id"), ulaw)
        elif kind == "response.output_audio_transcript.delta":
            mapped = AgentText(text(event, "item_id"), text(event, "delta"))
        elif kind == "input_audio_buffer.speech_started":
            mapped = CallerSpeech(started=True, audio_ms=number(event, "audio_start_ms"))
        elif kind == "input_audio_buffer.speech_stopped":
            mapped = CallerSpeech(started=False, audio_ms=number(event, "audio_end_ms"))
        elif kind == "conversation.item.input_audio_transcription.completed":
            mapped = CallerText(text(event, "transcript").strip())
        elif kind == "response.function_call_arguments.done":
            mapped = ToolCall(text(event, "name"), text(event, "arguments"))
        elif kind == "response.done":
            mapped = self._response_done(part(event, "response"))
        elif kind == "error":
            self._on_error(part(event, "error"))
        return mapped

    def _response_done(self, response: Event) -> ResponseDone:
        status = text(response, "status") or "completed"
        if status == "failed":  # e.g. a rate limit met mid-response
            error = part(part(response, "status_details"), "error") or None
            raise ProviderError(f"response failed: {error}", provider=PROVIDER, retryable=True)
        usage = part(response, "usage")
        return ResponseDone(
            status,
            input_tokens=number(usage, "input_tokens"),
            output_tokens=number(usage, "output_tokens"),
        )

    def _on_error(self, error: Event) -> None:
        kind, code, message = text(error, "type"), text(error, "code"), text(error, "message")
        if code == "response_cancel_not_active":  # a barge-in with no response running
            return
        if kind == "invalid_request_error" and "rate_limit" not in code:
            log.warning("the Realtime server refused a request", code=code, error=message)
            return
        retryable = kind == "server_error" or "rate_limit" in f"{kind} {code}"
        raise ProviderError(f"{kind} {code}: {message}", provider=PROVIDER, retryable=retryable)
