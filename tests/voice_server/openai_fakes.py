"""Local stand-ins for OpenAI that speak its real protocols, for the real `openai` client.

`FakeOpenAiHttp` is a Starlette app under uvicorn on a loopback port: `/v1/chat/completions` as
SSE chunks, `/v1/audio/speech` as streamed PCM (`speech_for(text)`, by default the same
`speech_pcm` for any text), `/v1/audio/transcriptions` as JSON. Delays are
settable, `stall_after` stops a stream midway for good, `failures` makes the next requests fail
(a status with headers, or a hang until the client gives up), every request is recorded, and a
stream the client abandoned is noticed.

`FakeRealtime` is a `websockets` server for `/v1/realtime?intent=transcription`: it answers
`session.update`, and turns appended audio into one utterance per `utterance_bytes` (server VAD
mode) or per `commit` (manual mode), each transcribed as the next scripted transcript. With
`listen=True` it instead detects speech in the μ-law it receives with a real VAD (speech started,
then stopped after the session's `silence_duration_ms`) and names each utterance with
`recognise(audio)` after `transcribe_delay_s`, as the real service does. It can drop the
connection (close code 1011) once enough audio has arrived.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from media.codec import FRAME_BYTES, FRAME_MS, ulaw_to_pcm16
from media.turns import Endpointer, EndpointingOptions, SpeechEnded, SpeechStarted
from media.vad import VoiceActivityDetector
from voice_server.providers.openai_live import LiveTuning
from voice_server.settings import Settings

TUNING = LiveTuning(total_s=5, connect_s=1, read_s=0.5, max_retries=1)  # clients of the fakes


@dataclass(frozen=True)
class HttpFailure:
    """Answer the next request with `status` and `headers` instead of the scripted response."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)


HANG: Literal["hang"] = "hang"  # send nothing at all until the client goes away


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def pointed_at(settings: Settings, http_base_url: str, websocket_base_url: str) -> Settings:
    """`settings` with the OpenAI providers on (a test key) and pointed at the stand-ins."""
    return settings.model_copy(
        update={
            "openai_api_key": SecretStr("test-key"),
            "openai_base_url": f"{http_base_url}/v1",
            "openai_websocket_base_url": websocket_base_url,
        }
    )


def text_deltas(*pieces: str) -> list[dict[str, Any]]:
    """Chat-completion deltas carrying the answer's text in `pieces`."""
    return [{"role": "assistant", "content": ""}] + [{"content": piece} for piece in pieces]


def tool_call_deltas(index: int, call_id: str, name: str, *arguments: str) -> list[dict[str, Any]]:
    """One tool call as OpenAI streams it: id and name first, then the arguments in pieces."""
    first = {"index": index, "id": call_id, "type": "function", "function": {"name": name}}
    rest = [{"index": index, "function": {"arguments": piece}} for piece in arguments]
    return [{"tool_calls": [fragment]} for fragment in (first, *rest)]


class FakeOpenAiHttp:
    """The HTTP side of OpenAI on a loopback port; see the module docstring."""

    def __init__(self) -> None:
        self.base_url = ""
        self.requests: list[RecordedRequest] = []
        self.failures: deque[HttpFailure | Literal["hang"]] = deque()
        self.fail_chat: HttpFailure | Literal["hang"] | None = None  # every chat request fails
        self.chat_deltas: list[dict[str, Any]] = text_deltas("Hello", " there.")
        self.finish_reason = "stop"
        self.chat_error: dict[str, Any] | None = None  # sent as an event after the deltas
        self.usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        self.speech_pcm = bytes(range(256)) * 48  # 12 288 bytes: 0.256 s at 24 kHz
        self.speech_for: Callable[[str], bytes] = lambda text: self.speech_pcm
        self.speech_chunk_bytes = 4097  # odd sizes, as the real service sends
        self.transcripts: deque[str] = deque()
        self.delay_s = 0.0  # before each streamed piece
        self.stall_after: int | None = None  # pieces sent before the stream stalls for good
        self.abandoned = asyncio.Event()  # a client closed a stream before its end
        self.abandoned_streams: list[str] = []  # which kinds ("chat", "speech") were abandoned
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/audio/speech", self._speech, methods=["POST"]),
                Route("/v1/audio/transcriptions", self._transcriptions, methods=["POST"]),
            ]
        )

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        if (failure := await self._failure(request, body)) is not None:
            return failure
        include_usage = body.get("stream_options", {}).get("include_usage", False)
        events = [_sse(chunk) for chunk in self._chat_chunks(body["model"], include_usage)]
        return StreamingResponse(
            self._pieces([*events, b"data: [DONE]\n\n"], "chat"), media_type="text/event-stream"
        )

    def _chat_chunks(self, model: str, include_usage: bool) -> Iterable[dict[str, Any]]:
        def chunk(choices: list[dict[str, Any]], usage: Any = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": choices,
                "usage": usage,
            }

        for delta in self.chat_deltas:
            yield chunk([{"index": 0, "delta": delta, "finish_reason": None}])
        if self.chat_error is not None:
            yield {"error": self.chat_error}
            return
        yield chunk([{"index": 0, "delta": {}, "finish_reason": self.finish_reason}])
        if include_usage:
            yield chunk([], self.usage)

    async def _speech(self, request: Request) -> Response:
        body = await request.json()
        if (failure := await self._failure(request, body)) is not None:
            return failure
        size, pcm = self.speech_chunk_bytes, self.speech_for(body["input"])
        pieces = [pcm[start : start + size] for start in range(0, len(pcm), size)]
        return StreamingResponse(
            self._pieces(pieces, "speech"), media_type="application/octet-stream"
        )

    async def _transcriptions(self, request: Request) -> Response:
        async with request.form() as form:
            upload = form["file"]
            assert not isinstance(upload, str)
            body: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
            body["file"] = {
                "filename": upload.filename,
                "content_type": upload.content_type,
                "data": await upload.read(),
            }
        if (failure := await self._failure(request, body)) is not None:
            return failure
        return JSONResponse({"text": self.transcripts.popleft()})

    async def _failure(self, request: Request, body: dict[str, Any]) -> Response | None:
        self.requests.append(RecordedRequest(request.url.path, dict(request.headers), body))
        chat = request.url.path.endswith("/chat/completions")
        if chat and self.fail_chat is not None:
            failure = self.fail_chat
        elif self.failures:
            failure = self.failures.popleft()
        else:
            return None
        if failure == HANG:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            self.abandoned.set()
            return Response(status_code=499)
        error = {"error": {"message": "scripted failure", "type": "fake", "code": None}}
        return JSONResponse(error, status_code=failure.status, headers=failure.headers)

    async def _pieces(self, pieces: list[bytes], kind: str) -> AsyncIterator[bytes]:
        """Starlette cancels this when the client disconnects (ASGI spec 2.3 under uvicorn)."""
        finished = False
        try:
            for sent, piece in enumerate(pieces):
                if sent == self.stall_after:
                    await asyncio.Event().wait()  # until the client goes away
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)  # the stand-in's scripted latency
                yield piece
            finished = True
        finally:
            if not finished:
                self.abandoned_streams.append(kind)
                self.abandoned.set()


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


@asynccontextmanager
async def serve_http(fake: FakeOpenAiHttp) -> AsyncIterator[FakeOpenAiHttp]:
    """Serve `fake` on a free loopback port for as long as the block runs. The socket listens
    before uvicorn starts, so early connections wait in the backlog instead of being refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    fake.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        fake.app, log_config=None, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield fake
    finally:
        server.should_exit = True
        await serving
        sock.close()


def voiced_tone(seconds: float, rate_hz: int) -> bytes:
    """A voiced-sounding tone (a 140 Hz fundamental with harmonics) as 16-bit PCM at
    `rate_hz`: speech to a VAD, cheap to make in any length."""
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    wave = np.sum([np.sin(2 * np.pi * 140 * k * t) / k for k in (1, 2, 3, 5)], axis=0)
    pcm: bytes = (6000 * wave).astype("<i2").tobytes()
    return pcm


@dataclass
class RealtimeUtterance:
    """One utterance the fake heard: how much audio went in, and what it said back."""

    audio_bytes: int
    transcript: str


class FakeRealtime:
    """The Realtime transcription WebSocket; see the module docstring."""

    def __init__(self) -> None:
        self.websocket_base_url = ""
        self.transcripts: deque[str] = deque()
        self.utterance_bytes = 8000  # server VAD mode: one utterance per second of μ-law
        self.listen = False  # detect speech in the audio instead of counting bytes
        self.recognise: Callable[[bytes], str] = lambda audio: self.transcripts.popleft()
        self.transcribe_delay_s = 0.0
        self.drop_after_bytes: int | None = None
        self.raw_before_transcripts: list[str] = []  # sent as they are, before each transcript
        self.paths: list[str] = []
        self.authorizations: list[str | None] = []
        self.sessions: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.utterances: list[RealtimeUtterance] = []
        self.closed = asyncio.Event()
        self._ids = itertools.count(1)

    async def handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        self.paths.append(connection.request.path)
        self.authorizations.append(connection.request.headers.get("Authorization"))
        state = _RealtimeState()
        try:
            await self._send(connection, {"type": "session.created", "session": {}})
            async for message in connection:
                event = json.loads(message)
                self.events.append(event)
                await self._on_event(connection, state, event)
        finally:
            for task in list(state.pending):
                task.cancel()
            self.closed.set()

    async def _on_event(
        self, connection: ServerConnection, state: _RealtimeState, event: dict[str, Any]
    ) -> None:
        kind = event["type"]
        if kind == "session.update":
            state.session = event["session"]
            self.sessions.append(state.session)
            await self._send(connection, {"type": "session.updated", "session": state.session})
        elif kind == "input_audio_buffer.append" and self.listen:
            await self._on_speech(connection, state, base64.b64decode(event["audio"]))
        elif kind == "input_audio_buffer.append":
            await self._on_audio(connection, state, len(base64.b64decode(event["audio"])))
        elif kind == "input_audio_buffer.commit":
            await self._transcribe(connection, state)

    async def _on_audio(
        self, connection: ServerConnection, state: _RealtimeState, size: int
    ) -> None:
        state.received += size
        if self.drop_after_bytes is not None and state.received >= self.drop_after_bytes:
            await connection.close(code=1011, reason="fake drop")
            return
        if not state.buffered and state.server_vad:
            await self._send(connection, {"type": "input_audio_buffer.speech_started"})
        state.buffered += size
        if state.server_vad and state.buffered >= self.utterance_bytes:
            await self._send(connection, {"type": "input_audio_buffer.speech_stopped"})
            await self._transcribe(connection, state)

    async def _on_speech(
        self, connection: ServerConnection, state: _RealtimeState, ulaw: bytes
    ) -> None:
        """One appended chunk through the VAD; speech events and transcripts as they fall due."""
        state.received += len(ulaw)
        if self.drop_after_bytes is not None and state.received >= self.drop_after_bytes:
            await connection.close(code=1011, reason="fake drop")
            return
        for heard in state.detector(self._silence_ms(state)).feed(ulaw):
            if isinstance(heard, HeardStart):
                await self._send(connection, {"type": "input_audio_buffer.speech_started"})
            else:
                await self._send(connection, {"type": "input_audio_buffer.speech_stopped"})
                task = asyncio.create_task(self._late(connection, state, heard.audio))
                state.pending.add(task)
                task.add_done_callback(state.pending.discard)

    def _silence_ms(self, state: _RealtimeState) -> float:
        return silence_ms(state.session)

    async def _late(
        self, connection: ServerConnection, state: _RealtimeState, audio: bytes
    ) -> None:
        await asyncio.sleep(self.transcribe_delay_s)  # the fixed transcription latency
        state.buffered = len(audio)
        with suppress(ConnectionClosed):
            await self._transcribe(connection, state, self.recognise(audio))

    async def _transcribe(
        self, connection: ServerConnection, state: _RealtimeState, text: str | None = None
    ) -> None:
        item = f"item_{next(self._ids)}"
        transcript = self.transcripts.popleft() if text is None else text
        self.utterances.append(RealtimeUtterance(state.buffered, transcript))
        state.buffered = 0
        for raw in self.raw_before_transcripts:
            await connection.send(raw)
        await self._send(connection, {"type": "input_audio_buffer.committed", "item_id": item})
        for word in transcript.split(" "):
            delta = word if transcript.startswith(word) else f" {word}"
            await self._send(connection, _transcription("delta", item, delta=delta))
        await self._send(connection, _transcription("completed", item, transcript=transcript))

    async def _send(self, connection: ServerConnection, event: dict[str, Any]) -> None:
        await connection.send(json.dumps({"event_id": f"event_{next(self._ids)}", **event}))


_BEFORE_SPEECH = 40 * FRAME_BYTES  # audio kept from before the VAD's (late) speech onset


def silence_ms(session: dict[str, Any]) -> float:
    """The end-of-turn silence a session asked for (500 ms, the server's default)."""
    vad = session.get("audio", {}).get("input", {}).get("turn_detection") or {}
    return float(vad.get("silence_duration_ms", 500))


@dataclass(frozen=True)
class HeardStart:
    audio_ms: int  # where the speech began, in the audio appended so far


@dataclass(frozen=True)
class HeardEnd:
    audio_ms: int  # where the speech ended (its last voiced frame)
    audio: bytes  # the utterance, with what may have preceded the VAD's onset


class SpeechDetector:
    """A real VAD over appended μ-law, as the Realtime server's: speech starts, and ends after
    `silence_ms` of silence, on the timeline of the audio itself."""

    def __init__(self, silence_ms: float) -> None:
        self._vad = VoiceActivityDetector()
        self._endpointer = Endpointer(EndpointingOptions(end_silence_ms=silence_ms))
        self._clock = 0.0
        self._audio = b""

    def feed(self, ulaw: bytes) -> list[HeardStart | HeardEnd]:
        heard: list[HeardStart | HeardEnd] = []
        self._audio += ulaw
        for offset in range(0, len(ulaw) - FRAME_BYTES + 1, FRAME_BYTES):
            frame = ulaw[offset : offset + FRAME_BYTES]
            self._clock += FRAME_MS / 1000
            decision = self._endpointer.process(
                self._vad.is_speech(ulaw_to_pcm16(frame)), self._clock
            )
            if isinstance(decision, SpeechStarted):
                heard.append(HeardStart(round(decision.at * 1000)))
            elif isinstance(decision, SpeechEnded):
                utterance, self._audio = self._audio, b""
                heard.append(HeardEnd(round(decision.last_speech_at * 1000), utterance))
        if not self._endpointer.in_speech:
            self._audio = self._audio[-_BEFORE_SPEECH:]  # silence: keep only what may precede
        return heard


@dataclass
class _RealtimeState:
    session: dict[str, Any] = field(default_factory=dict)
    received: int = 0
    buffered: int = 0
    pending: set[asyncio.Task[None]] = field(default_factory=set)
    _detector: SpeechDetector | None = None

    def detector(self, silence_ms: float) -> SpeechDetector:
        if self._detector is None:
            self._detector = SpeechDetector(silence_ms)
        return self._detector

    @property
    def server_vad(self) -> bool:
        return self.session.get("audio", {}).get("input", {}).get("turn_detection") is not None


def _transcription(stage: str, item: str, **fields: str) -> dict[str, Any]:
    kind = f"conversation.item.input_audio_transcription.{stage}"
    return {"type": kind, "item_id": item, "content_index": 0, **fields}


class RealtimeEndpoint(Protocol):
    """What `serve_realtime` serves: a handler of connections, told its base URL."""

    websocket_base_url: str

    async def handle(self, connection: ServerConnection) -> None: ...


Endpoint = TypeVar("Endpoint", bound=RealtimeEndpoint)


@asynccontextmanager
async def serve_realtime(fake: Endpoint) -> AsyncIterator[Endpoint]:
    """Serve `fake` on a free loopback port for as long as the block runs."""
    async with serve(fake.handle, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        fake.websocket_base_url = f"ws://127.0.0.1:{port}/v1"
        yield fake
