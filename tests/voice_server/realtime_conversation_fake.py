"""A local stand-in for OpenAI's Realtime conversation session (`/v1/realtime?model=…`), for
the real `openai` client: the speech-to-speech side of the protocol (docs/openai.md §8).

It answers `session.update`, hears the appended μ-law with a real VAD (speech started, then
stopped after the session's silence), transcribes each utterance with `recognise(audio)`, and
(with `create_response`) answers it with the next scripted `Reply`: the first audio
`first_audio_delay_s` after the response starts (the model's latency), μ-law audio deltas of
`delta_bytes`, `delta_delay_s` apart, the transcript interleaved, an `end_call` tool call if
scripted, then `response.done` with usage. `response.cancel`, `conversation.item.truncate`
(refused past the item's audio, as the real server does) and `conversation.item.create` are
recorded. Failures: refuse the next handshakes with a status (`refusals`), drop the socket
(1011) after a response, or answer a response with other events (`instead`: a server `error`,
a failed `response.done`).

Every session is kept in `sessions` with what it received, for the tests to read; with
`record=False` nothing is (a long benchmark). `RealtimeRoutes` serves it and the transcription
stand-in on one base URL, as OpenAI does.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.voice_server.openai_fakes import FakeRealtime, HeardStart, SpeechDetector, silence_ms

USAGE = {"input_tokens": 120, "output_tokens": 80, "total_tokens": 200}


@dataclass(frozen=True)
class Reply:
    text: str
    audio: bytes  # μ-law, 8 kHz
    end_call: bool = False


@dataclass
class Session:
    """One connection, as the stand-in saw it."""

    path: str
    config: dict[str, Any] = field(default_factory=dict)
    received: bytearray = field(default_factory=bytearray)  # the caller's μ-law
    items: list[dict[str, Any]] = field(default_factory=list)  # conversation.item.create
    truncates: list[dict[str, Any]] = field(default_factory=list)
    cancels: int = 0  # response.cancel events
    cancelled: int = 0  # ... that found a response running
    responses: list[str] = field(default_factory=list)  # item ids of the answers
    item_bytes: dict[str, int] = field(default_factory=dict)  # audio made for each item
    response: asyncio.Task[None] | None = None
    detector: SpeechDetector | None = None
    pending: set[asyncio.Task[None]] = field(default_factory=set)


class FakeRealtimeConversation:
    def __init__(self, recognise: Callable[[bytes], str], reply: Reply) -> None:
        self.websocket_base_url = ""
        self.recognise = recognise
        self.replies: deque[Reply] = deque()
        self.default_reply = reply  # when no scripted reply is left
        self.delta_bytes = 1600  # 200 ms of audio per delta
        self.delta_delay_s = 0.0  # between deltas: 0.1 makes audio at twice real time
        self.first_audio_delay_s = 0.0  # response started → its first audio delta
        self.record = True  # keep each session in `sessions`, with the audio it received
        self.refusals: deque[int | None] = deque()  # the next handshakes: a status, or None: ok
        self.drop_after_response: int | None = None  # close (1011) once it is done
        self.fail_response: int | None = None  # the n-th response (1-based) is a server error
        self.instead: deque[list[dict[str, Any]]] = deque()  # events to send for a response
        self.sessions: list[Session] = []
        self.refused_paths: list[str] = []
        self._responses = 0
        self._ids = itertools.count(1)

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if not self.refusals or (refusal := self.refusals.popleft()) is None:
            return None
        self.refused_paths.append(request.path)
        status = HTTPStatus(refusal)
        return connection.respond(status, f"{status.phrase}\n")

    async def handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        session = Session(connection.request.path)
        if self.record:
            self.sessions.append(session)
        try:
            await self._send(connection, {"type": "session.created", "session": {}})
            async for message in connection:
                await self._on_event(connection, session, json.loads(message))
        except ConnectionClosed:
            pass  # a drop, or the client went away
        finally:
            for task in [*session.pending, *filter(None, [session.response])]:
                task.cancel()

    async def _on_event(
        self, connection: ServerConnection, session: Session, event: dict[str, Any]
    ) -> None:
        kind = event["type"]
        if kind == "session.update":
            session.config = event["session"]
            await self._send(connection, {"type": "session.updated", "session": session.config})
        elif kind == "input_audio_buffer.append":
            await self._hear(connection, session, base64.b64decode(event["audio"]))
        elif kind == "conversation.item.create":
            session.items.append(event["item"])
        elif kind == "response.create":
            self._start_response(connection, session)
        elif kind == "response.cancel":
            await self._cancel(connection, session)
        elif kind == "conversation.item.truncate":
            await self._truncate(connection, session, event)

    async def _hear(self, connection: ServerConnection, session: Session, ulaw: bytes) -> None:
        if self.record:
            session.received += ulaw
        if session.detector is None:
            session.detector = SpeechDetector(silence_ms(session.config))
        for heard in session.detector.feed(ulaw):
            item = f"item_in_{next(self._ids)}"
            if isinstance(heard, HeardStart):
                started = {"audio_start_ms": heard.audio_ms, "item_id": item}
                await self._send(
                    connection, {"type": "input_audio_buffer.speech_started", **started}
                )
                continue
            stopped = {"audio_end_ms": heard.audio_ms, "item_id": item}
            await self._send(connection, {"type": "input_audio_buffer.speech_stopped", **stopped})
            await self._send(connection, {"type": "input_audio_buffer.committed", "item_id": item})
            await self._transcribe(connection, item, heard.audio)
            if self._turn_detection(session).get("create_response"):
                self._start_response(connection, session)

    def _turn_detection(self, session: Session) -> dict[str, Any]:
        detection: dict[str, Any] = session.config["audio"]["input"]["turn_detection"]
        return detection

    async def _transcribe(self, connection: ServerConnection, item: str, audio: bytes) -> None:
        kind = "conversation.item.input_audio_transcription.completed"
        event = {"type": kind, "item_id": item, "content_index": 0}
        await self._send(connection, {**event, "transcript": self.recognise(audio)})

    def _start_response(self, connection: ServerConnection, session: Session) -> None:
        if session.response is not None and not session.response.done():
            busy = error_event("invalid_request_error", "conversation_already_has_active_response")
            session.pending.add(asyncio.create_task(self._send(connection, busy)))
            return
        self._responses += 1
        if self._responses == self.fail_response:
            self.instead.appendleft([error_event("server_error", None)])
        if self.instead:
            events = self.instead.popleft()
            session.response = asyncio.create_task(self._send_all(connection, events))
            return
        reply = self.replies.popleft() if self.replies else self.default_reply
        session.response = asyncio.create_task(self._speak(connection, session, reply))

    async def _speak(self, connection: ServerConnection, session: Session, reply: Reply) -> None:
        response, item = f"resp_{next(self._ids)}", f"item_out_{next(self._ids)}"
        session.responses.append(item)
        session.item_bytes[item] = 0
        await self._send(connection, _response_event("response.created", response, "in_progress"))
        added = {"type": "message", "id": item, "role": "assistant", "content": []}
        await self._send(
            connection,
            {"type": "response.output_item.added", "response_id": response, "output_index": 0,
             "item": added},
        )  # fmt: skip
        where = {"response_id": response, "item_id": item, "output_index": 0, "content_index": 0}
        if self.first_audio_delay_s:
            await asyncio.sleep(self.first_audio_delay_s)  # the stand-in model's latency
        words, told = reply.text.split(" "), 0
        pieces = range(0, len(reply.audio), self.delta_bytes)
        for number, offset in enumerate(pieces, 1):
            # The transcript runs a little ahead of the audio, as the real service's does.
            due = min(len(words), -(-len(words) * (number + 1) // len(pieces)))
            for word in words[told:due]:
                delta = word if told == 0 else f" {word}"
                kind = "response.output_audio_transcript.delta"
                await self._send(connection, {"type": kind, **where, "delta": delta})
                told += 1
            chunk = reply.audio[offset : offset + self.delta_bytes]
            session.item_bytes[item] += len(chunk)
            audio = base64.b64encode(chunk).decode("ascii")
            await self._send(
                connection, {"type": "response.output_audio.delta", **where, "delta": audio}
            )
            if self.delta_delay_s:
                await asyncio.sleep(self.delta_delay_s)  # the stand-in model's speed
        await self._send(connection, {"type": "response.output_audio.done", **where})
        done = {"type": "response.output_audio_transcript.done", **where, "transcript": reply.text}
        await self._send(connection, done)
        if reply.end_call:
            call = {"response_id": response, "item_id": f"item_fc_{next(self._ids)}",
                    "output_index": 1, "call_id": "call_1", "name": "end_call",
                    "arguments": "{}"}  # fmt: skip
            kind = "response.function_call_arguments.done"
            await self._send(connection, {"type": kind, **call})
        await self._send(connection, _response_event("response.done", response, "completed"))
        session.response = None
        if self._responses == self.drop_after_response:
            await connection.close(code=1011, reason="fake drop")

    async def _cancel(self, connection: ServerConnection, session: Session) -> None:
        session.cancels += 1
        running = session.response
        if running is None or running.done():
            await self._send(
                connection, error_event("invalid_request_error", "response_cancel_not_active")
            )
            return
        running.cancel()
        session.cancelled += 1
        session.response = None
        await self._send(
            connection, _response_event("response.done", "resp_cancelled", "cancelled")
        )

    async def _truncate(
        self, connection: ServerConnection, session: Session, event: dict[str, Any]
    ) -> None:
        session.truncates.append(event)
        made_ms = session.item_bytes.get(event["item_id"], 0) / 8
        if event["audio_end_ms"] > made_ms:  # longer than the item's audio
            await self._send(connection, error_event("invalid_request_error", "invalid_value"))
            return
        fields = {k: event[k] for k in ("item_id", "content_index", "audio_end_ms")}
        await self._send(connection, {"type": "conversation.item.truncated", **fields})

    async def _send_all(self, connection: ServerConnection, events: list[dict[str, Any]]) -> None:
        for event in events:
            await self._send(connection, event)

    async def _send(self, connection: ServerConnection, event: dict[str, Any]) -> None:
        with suppress(ConnectionClosed):
            await connection.send(json.dumps({"event_id": f"event_{next(self._ids)}", **event}))


def _response_event(kind: str, response: str, status: str) -> dict[str, Any]:
    usage = USAGE if status == "completed" else None
    body = {"id": response, "object": "realtime.response", "status": status, "output": []}
    return {"type": kind, "response": {**body, "usage": usage}}


def error_event(kind: str, code: str | None) -> dict[str, Any]:
    """An `error` event, as the real server words it."""
    return {"type": "error", "error": {"type": kind, "code": code, "message": f"{kind} {code}"}}


class RealtimeRoutes:
    """The transcription and conversation stand-ins behind one WebSocket base URL, as OpenAI
    serves them: the SDK connects to `<base>/realtime?intent=transcription` for a transcription
    session and to `<base>/realtime?model=<model>` for a conversation. Served by
    `serve_realtime` (no handshake refusals)."""

    def __init__(self, transcription: FakeRealtime, conversation: FakeRealtimeConversation) -> None:
        self.transcription = transcription
        self.conversation = conversation
        self.websocket_base_url = ""

    async def handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        query = parse_qs(urlsplit(connection.request.path).query)
        if query.get("intent") == ["transcription"]:
            await self.transcription.handle(connection)
        else:
            await self.conversation.handle(connection)


@asynccontextmanager
async def serve_conversation(
    fake: FakeRealtimeConversation,
) -> AsyncIterator[FakeRealtimeConversation]:
    """Serve `fake` on a free loopback port for as long as the block runs."""
    async with serve(fake.handle, "127.0.0.1", 0, process_request=fake.process_request) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        fake.websocket_base_url = f"ws://127.0.0.1:{port}/v1"
        yield fake
