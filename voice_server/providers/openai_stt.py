"""Speech-to-text over OpenAI: a Realtime transcription session per call, and a per-utterance
HTTP fallback for models without streaming.

Realtime (docs/openai.md §4a): one WebSocket opened with `intent=transcription`, configured for
`audio/pcmu`, so Twilio's μ-law frames go in unchanged (base64, as `input_audio_buffer.append`
wants). `push_audio` only queues, in a bounded `AudioBacklog` (audio beyond it is dropped and
the session goes on); one task sends the backlog, another turns server events into `SttResult`s,
both in the session's own TaskGroup (`workers.running`). While nobody speaks (neither the
call's own VAD nor the server's has speech under way) frames are held and appended
`QUIET_APPEND_FRAMES` at a time, a twenty-fifth of the appends; the caller's voice goes
`SPEECH_APPEND_FRAMES` at a time. The server's end of a turn is never late for it: the silence
that ends a turn goes out frame by frame from its first frame, and an utterance end (manual
commits) sends what is held first.
With `semantic_vad` (the agent's default) or `server_vad` the server ends the caller's turns
itself; models that need `turn_detection: null` (gpt-realtime-whisper) are committed on the
call's own endpointing.
WebSocket failures are not SDK exceptions (§3): `websockets` errors and `OSError` are mapped too.

HTTP (§4b): the call's VAD delimits an utterance, which is posted as an 8 kHz PCM16 WAV to
`audio.transcriptions.create` once the caller's turn has ended.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import openai
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import (
    RealtimeTranscriptionSessionAudioInputParam,
    RealtimeTranscriptionSessionAudioInputTurnDetectionParam,
    RealtimeTranscriptionSessionCreateRequestParam,
)
from websockets.exceptions import WebSocketException

from media.codec import ulaw_to_pcm16
from media.wav import wav_bytes
from voice_server.log import get_logger
from voice_server.providers.audio_backlog import AudioBacklog
from voice_server.providers.base import ProviderError, SttOptions, SttResult, SttResults
from voice_server.providers.openai_errors import provider_error
from voice_server.providers.realtime_events import Event, part, server_events, text
from voice_server.providers.workers import running

log = get_logger(__name__)

PROVIDER = "openai-stt"
MANUAL_COMMIT_MODELS = frozenset({"gpt-realtime-whisper"})  # requires turn_detection null (§4a)
_FAILURES = (openai.OpenAIError, WebSocketException, OSError)

# `input_audio_buffer.append` as JSON text; base64 needs no escaping.
_APPEND_PREFIX = '{"type":"input_audio_buffer.append","audio":"'
_APPEND_SUFFIX = '"}'
# 500 ms an append while nobody speaks: only the server's speech_started can come later for it,
# and nothing waits on that (the caller's voice, and the server hearing speech, send at once;
# only a sound the call's VAD never calls speech could reach the server's VAD that late).
QUIET_APPEND_FRAMES = 25
# 60 ms an append while the caller's voice is heard: its words reach the server up to 40 ms
# later, but the silence that ends the turn does not, as the first frame without voice sends
# what is held and the rest of the silence goes frame by frame.
SPEECH_APPEND_FRAMES = 3


@dataclass(frozen=True, slots=True)
class ServerVad:
    """The server's endpointing (§4a `server_vad`); threshold 0–1, times in ms. An agent's own
    end-of-turn silence (`SttOptions.end_silence_ms`) replaces `silence_duration_ms`."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 400


@dataclass(frozen=True, slots=True)
class RealtimeSttConfig:
    """`vad=None` commits each utterance on the call's own endpointing instead."""

    vad: ServerVad | None = ServerVad()
    noise_reduction: Literal["near_field", "far_field"] | None = "near_field"
    connect_timeout_s: float = 3.0
    backlog_ms: int = 5000  # audio waiting for the socket; more is dropped until it catches up


class OpenAiRealtimeSpeechToText:
    """`SpeechToText` over a Realtime transcription session, one WebSocket per call."""

    def __init__(self, client: AsyncOpenAI, config: RealtimeSttConfig | None = None) -> None:
        self._client = client
        self._config = config or RealtimeSttConfig()

    @asynccontextmanager
    async def open_session(self, options: SttOptions) -> AsyncIterator[RealtimeSttSession]:
        manual = self._config.vad is None or options.model in MANUAL_COMMIT_MODELS
        async with AsyncExitStack() as stack:
            connection = await self._connect(stack, options, manual)
            backlog = AudioBacklog(self._config.backlog_ms, recogniser=PROVIDER)
            session = RealtimeSttSession(connection, manual, backlog)
            async with running(session.send_audio(), session.receive_events()):
                yield session

    async def _connect(
        self, stack: AsyncExitStack, options: SttOptions, manual: bool
    ) -> AsyncRealtimeConnection:
        manager = self._client.realtime.connect(extra_query={"intent": "transcription"})
        try:
            async with asyncio.timeout(self._config.connect_timeout_s):
                connection = await stack.enter_async_context(manager)
            await connection.session.update(session=self._session(options, manual))
        except _FAILURES as error:
            raise provider_error(error, PROVIDER) from error
        return connection

    def _session(
        self, options: SttOptions, manual: bool
    ) -> RealtimeTranscriptionSessionCreateRequestParam:
        vad, noise = self._config.vad, self._config.noise_reduction
        audio_input: RealtimeTranscriptionSessionAudioInputParam = {
            "format": {"type": "audio/pcmu"},
            "transcription": {"model": options.model, "language": iso_language(options.language)},
            "turn_detection": None if manual or vad is None else _turn_detection(vad, options),
        }
        if noise is not None:
            audio_input["noise_reduction"] = {"type": noise}
        return {"type": "transcription", "audio": {"input": audio_input}}


def _turn_detection(
    vad: ServerVad, options: SttOptions
) -> RealtimeTranscriptionSessionAudioInputTurnDetectionParam:
    """The agent's choice (§4a): the end of a turn judged on the words (`semantic_vad`, with its
    eagerness; it has no silence setting) or on silence: the agent's end-of-turn silence, else
    the configured one."""
    if options.turn_detection == "semantic_vad":
        return {"type": "semantic_vad", "eagerness": options.eagerness}
    return {
        "type": "server_vad",
        "threshold": vad.threshold,
        "prefix_padding_ms": vad.prefix_padding_ms,
        "silence_duration_ms": options.end_silence_ms or vad.silence_duration_ms,
    }


async def append_audio(connection: AsyncRealtimeConnection, ulaw: bytes) -> None:
    """`input_audio_buffer.append` of μ-law, built by hand: the SDK's per-event request
    transform cost a quarter of the server's CPU at 200 calls (50 appends per second per call)."""
    encoded = base64.b64encode(ulaw).decode("ascii")
    await connection.send_raw(_APPEND_PREFIX + encoded + _APPEND_SUFFIX)


def iso_language(language: str) -> str:
    """OpenAI takes ISO-639-1 codes: `en-US` → `en`."""
    return language.partition("-")[0].lower()


class RealtimeSttSession:
    """One call's transcription session; opened by `OpenAiRealtimeSpeechToText.open_session`.

    `speaking` and `speech_stopped_at` (monotonic seconds) follow the server's VAD events.
    """

    punctuates = True

    def __init__(
        self, connection: AsyncRealtimeConnection, manual_commit: bool, backlog: AudioBacklog
    ) -> None:
        self._connection = connection
        self._manual_commit = manual_commit
        self._backlog = backlog  # an utterance end asks for a commit
        self._results = SttResults()
        self._partials: dict[str, str] = {}
        self._uncommitted = False
        self._failed = False
        self._held: list[bytes] = []  # frames not yet queued, while nobody speaks
        self._caller_speaking = False  # by the call's own VAD
        self.speaking = False
        self.speech_stopped_at: float | None = None

    def push_audio(self, ulaw: bytes, speech: bool) -> None:
        if self._failed:
            return
        self._held.append(ulaw)
        if speech:
            batch = SPEECH_APPEND_FRAMES
        elif self._caller_speaking or self.speaking:
            batch = 1  # a turn may be ending: its silence is timed by the server as it arrives
        else:
            batch = QUIET_APPEND_FRAMES
        if len(self._held) >= batch:
            self._queue_held()

    def speech_started(self) -> None:
        """The server hears the start itself; what is held goes now, and the rest frame by
        frame."""
        self._caller_speaking = True
        self._queue_held()

    def speech_ended(self) -> None:
        self._caller_speaking = False
        if self._failed:
            return
        self._queue_held()
        if self._manual_commit:
            self._backlog.put_end()

    def _queue_held(self) -> None:
        if self._held:
            self._backlog.put_audio(b"".join(self._held))
            self._held.clear()

    def results(self) -> AsyncIterator[SttResult]:
        return self._results.stream()

    async def send_audio(self) -> None:
        """Forward queued audio for as long as the session is open, one append per backlog."""
        try:
            while True:
                await self._send_backlog()
        except _FAILURES as error:
            self._fail(provider_error(error, PROVIDER))

    async def receive_events(self) -> None:
        """Turn server events into results until the socket ends, which is always a failure.

        Events are read raw (`realtime_events`): only a few fields of five kinds are used.
        """
        try:
            async for event in server_events(self._connection, PROVIDER):
                self._on_event(event)
        except _FAILURES as error:
            self._fail(provider_error(error, PROVIDER))
        else:
            self._fail(ProviderError("the server ended the session", provider=PROVIDER))

    async def _send_backlog(self) -> None:
        audio = await self._backlog.take()
        if audio is None:
            await self._commit()
        elif audio:
            await append_audio(self._connection, audio)
            self._uncommitted = True

    async def _commit(self) -> None:
        if not self._uncommitted:  # committing an empty buffer is an error (§4a)
            self._results.put(SttResult(text="", final=True))
            return
        self._uncommitted = False
        await self._connection.input_audio_buffer.commit()

    def _on_event(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "input_audio_buffer.speech_started":
            self.speaking = True
        elif kind == "input_audio_buffer.speech_stopped":
            self.speaking, self.speech_stopped_at = False, time.monotonic()
        elif kind == "conversation.item.input_audio_transcription.delta":
            if delta := text(event, "delta"):
                item = text(event, "item_id")
                partial = self._partials[item] = self._partials.get(item, "") + delta
                self._results.put(SttResult(text=partial, final=False))
        elif kind == "conversation.item.input_audio_transcription.completed":
            self._partials.pop(text(event, "item_id"), None)
            self._results.put(SttResult(text=text(event, "transcript"), final=True))
        elif kind == "conversation.item.input_audio_transcription.failed":
            self._partials.pop(text(event, "item_id"), None)
            error = text(part(event, "error"), "message")
            log.warning("transcription of an utterance failed", error=error)
            self._results.put(SttResult(text="", final=True))
        elif kind == "error":
            error = text(part(event, "error"), "message")
            log.warning("transcription session reported an error", error=error)

    def _fail(self, error: ProviderError) -> None:
        if not self._failed:
            self._failed = True
            self._results.put(error)


class OpenAiUtteranceSpeechToText:
    """`SpeechToText` by one HTTP transcription per utterance, for models without streaming
    (whisper-1, compatible servers). `preroll_frames` of audio before the call's VAD onset,
    which fires late by design, are kept with the utterance."""

    def __init__(self, client: AsyncOpenAI, *, preroll_frames: int = 15) -> None:
        self._client = client
        self._preroll_frames = preroll_frames

    @asynccontextmanager
    async def open_session(self, options: SttOptions) -> AsyncIterator[UtteranceSttSession]:
        session = UtteranceSttSession(self._client, options, self._preroll_frames)
        async with running(session.transcribe_forever()):
            yield session


class UtteranceSttSession:
    """Buffers what the caller says between `speech_started()` and `speech_ended()` and
    transcribes each utterance in order."""

    punctuates = True

    def __init__(self, client: AsyncOpenAI, options: SttOptions, preroll_frames: int) -> None:
        self._client = client
        self._options = options
        self._preroll: deque[bytes] = deque(maxlen=preroll_frames)
        self._utterance: list[bytes] | None = None
        self._pending: asyncio.Queue[bytes] = asyncio.Queue()
        self._results = SttResults()

    def push_audio(self, ulaw: bytes, speech: bool) -> None:
        if self._utterance is None:
            self._preroll.append(ulaw)
        else:
            self._utterance.append(ulaw)

    def speech_started(self) -> None:
        if self._utterance is None:
            self._utterance = list(self._preroll)
            self._preroll.clear()

    def speech_ended(self) -> None:
        audio = b"".join(self._utterance or ())
        self._utterance = None
        self._pending.put_nowait(audio)

    def results(self) -> AsyncIterator[SttResult]:
        return self._results.stream()

    async def transcribe_forever(self) -> None:
        while True:
            audio = await self._pending.get()
            try:
                text = await self._transcribe(audio) if audio else ""
            except openai.OpenAIError as error:
                self._results.put(provider_error(error, PROVIDER))
            else:
                self._results.put(SttResult(text=text, final=True))

    async def _transcribe(self, ulaw: bytes) -> str:
        wav = wav_bytes(ulaw_to_pcm16(ulaw), 8000)  # μ-law WAVs are not known to work (§4b)
        transcription = await self._client.audio.transcriptions.create(
            model=self._options.model,
            file=("utterance.wav", wav, "audio/wav"),  # the server goes by name and type
            language=iso_language(self._options.language),
        )
        return transcription.text.strip()
