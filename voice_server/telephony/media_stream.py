"""WebSocket /twilio/stream: the media-stream edge, where every error of a call is mapped.

`serve_stream` serves one stream over any `StreamSocket`: picows' (`stream_socket`, how
`voice-server serve` takes streams) or Starlette's (the ASGI route, for other ASGI servers).
Once the call's session runs, a socket that can call back on each frame (`FramePusher`, picows')
hands every frame to it as it arrives; Starlette's is read by the call's inbound task.

Protocol errors in single frames are logged and the frame is dropped (a live call survives one
corrupt frame); a stream that cannot prove it belongs to a call we accepted is closed with 1008
before any provider is opened. Until it has proved that, a stream is anonymous: it must present
a valid `start` within `STREAM_START_TIMEOUT_SECONDS`, and only `MAX_PENDING_STREAMS` of them
may wait at once (more are closed with 1013). A peer that goes away before its `start` is one
INFO line. Whatever happens in the session, the call record is finalised, exactly once, when the
stream ends.

While the database is unreachable: a stream whose call cannot be read is closed with 1011
within the webhooks' database budget (Twilio then ends the call); a call under way goes on (its
transcript waits in memory, `voice_server.call.transcript`), and its end is recorded as the
time it ended, retried for up to `FINISH_WINDOW_S` after the transcript, then logged in full.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from pymongo.errors import PyMongoError
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from media.twilio import Connected, Event, ProtocolError, Start, parse_event
from stores.agents import Agent
from stores.calls import CallStore
from voice_server.call.context import CallContext, Opening
from voice_server.call.end_reasons import EndReason
from voice_server.call.feed import EventHandler
from voice_server.call.phrases import FALLBACK_TEXT
from voice_server.call.session import CallSession
from voice_server.call.speech_session import SpeechCallSession, SpeechRenders
from voice_server.call.transcript import FINISH_WINDOW_S
from voice_server.log import bind_call, get_logger
from voice_server.metrics import ACTIVE_CALLS, MALFORMED_FRAMES
from voice_server.provider_setup import agent_models
from voice_server.providers.base import TextToSpeech
from voice_server.providers.registry import UnknownModel
from voice_server.retry import retry_database
from voice_server.security.stream_tokens import (
    PendingStreamsFull,
    StreamGrant,
    StreamTokenError,
)
from voice_server.services import Services
from voice_server.twilio_api.outage import database_budget

log = get_logger(__name__)

POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013  # RFC 6455 §7.4.1, IANA registry: the server is too busy for this one
MAX_BAD_FRAMES = 50  # past this many malformed frames the peer is not Twilio: hang up
STREAM_PATH = "/twilio/stream"


class StreamGone(Exception):
    """Sent to a stream that is closed (picows' socket)."""


# Sending on a socket whose peer is gone: Starlette raises WebSocketDisconnect (for uvicorn's
# ClientDisconnected), RuntimeError once a close was sent, and the transport may raise OSError.
_GONE = (StreamGone, WebSocketDisconnect, RuntimeError, OSError)


class StreamSocket(Protocol):
    """What a media stream is served over; Starlette's `WebSocket` is one."""

    async def accept(self) -> None: ...

    async def receive(self) -> Message:
        """The next ASGI-shaped message: `websocket.receive` or `websocket.disconnect`."""
        ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class FrameSink(Protocol):
    def frame(self, data: bytes) -> None:
        """One frame's payload, as it arrived."""

    def closed(self, code: int) -> None:
        """The stream ended, with the peer's close code (1006 if it sent none)."""


@runtime_checkable
class FramePusher(Protocol):
    """A `StreamSocket` that can hand its frames over as they arrive, instead of being read."""

    def push_to(self, sink: FrameSink) -> None:
        """From now on, hand every frame to `sink` (those already received first, at once), and
        its end; `receive` is not called again."""


class StreamRefused(Exception):
    """The stream does not belong to a call we accepted, or may not wait for one now."""

    def __init__(self, reason: str, code: int = POLICY_VIOLATION) -> None:
        super().__init__(reason)
        self.code = code


class _PeerGone(Exception):
    """The peer went away before its stream started."""


async def media_stream(websocket: WebSocket) -> None:
    """The ASGI route."""
    await serve_stream(websocket, websocket.state.services)


async def serve_stream(websocket: StreamSocket, services: Services) -> None:
    inbound = Inbound(websocket)
    try:
        start, grant = await _admit(websocket, services, inbound)
        with database_budget():
            session = await _open_session(services, websocket, start, grant)
    except _PeerGone:
        log.info("media stream closed before start", code=inbound.peer_close_code)
        return
    except PyMongoError as error:  # Twilio then ends the call: no TwiML follows the stream
        log.error("media stream refused: the database is unreachable", error=str(error))
        await _close(websocket, INTERNAL_ERROR, "the database is unreachable")
        return
    except (ProtocolError, StreamTokenError, StreamRefused) as error:
        log.warning("media stream refused", reason=str(error))
        code = error.code if isinstance(error, StreamRefused) else POLICY_VIOLATION
        await _close(websocket, code, str(error))
        return
    log.info("media stream started")
    reason: EndReason = EndReason.SERVER_ERROR
    ACTIVE_CALLS.inc()
    services.live_calls.add(start.call_sid, session)
    try:
        reason = await session.run(inbound)
    except Exception:
        log.exception("call session failed")
    finally:
        ACTIVE_CALLS.dec()
        if inbound.peer_close_code is not None:
            log.info("media stream closed by peer", code=inbound.peer_close_code)
        if inbound.failed:
            reason = EndReason.SERVER_ERROR
        reason = inbound.refusal or reason
        await _finalize(services.calls, start, reason, session.ended_at)
        services.live_calls.remove(start.call_sid)
        code = POLICY_VIOLATION if inbound.refusal else 1000
        await _close(websocket, code, inbound.refusal or "")


async def _admit(
    websocket: StreamSocket, services: Services, inbound: Inbound
) -> tuple[Start, StreamGrant]:
    """Accept the socket and take its `start` and what its token grants, holding one of the
    places for streams that have not proved anything yet, until the start's token is redeemed or
    the deadline passes."""
    timeout = services.settings.stream_start_timeout_seconds
    try:
        with services.pending_streams.place():
            await _accept(websocket)
            async with asyncio.timeout(timeout):
                start = await _expect_start(inbound)
            bind_call(call_sid=start.call_sid, stream_sid=start.stream_sid)
            return start, services.tokens.redeem(start.custom_parameters, start.call_sid)
    except PendingStreamsFull as error:
        await _accept(websocket)
        raise StreamRefused(str(error), TRY_AGAIN_LATER) from None
    except TimeoutError:
        raise StreamRefused(f"no start within {timeout:g} s") from None


async def _accept(websocket: StreamSocket) -> None:
    try:
        await websocket.accept()
    except _GONE as error:
        raise _PeerGone from error


async def _close(websocket: StreamSocket, code: int, reason: str) -> None:
    with suppress(*_GONE):  # already closed by the peer
        await websocket.close(code=code, reason=reason[:120])


async def _expect_start(inbound: Inbound) -> Start:
    async for event in inbound.events:
        if isinstance(event, Start):
            return event
        if not isinstance(event, Connected):
            raise ProtocolError(f"{type(event).__name__.lower()} event before start")
    if inbound.refusal is not None:
        raise StreamRefused(inbound.refusal)
    raise _PeerGone


async def _open_session(
    services: Services, websocket: StreamSocket, start: Start, grant: StreamGrant
) -> CallSession | SpeechCallSession:
    """The call's session. Before the greeting plays this makes one write (the claim) and, on a
    server that did not answer the call's webhook, reads the agent once; the agent comes from
    the directory (`stores.directory`) otherwise. What else it needs of the call record, the
    stream's grant holds."""
    if not await services.calls.claim_stream(start.call_sid, start.stream_sid):
        raise StreamRefused(await _unclaimable(services.calls, start.call_sid))
    if not grant.agent_id:
        grant = await _grant_of_record(services.calls, start.call_sid)
    agent = await services.agents.get(grant.agent_id)
    if agent is None:
        raise StreamRefused("the call's agent no longer exists")
    try:
        providers = services.providers.for_models(agent_models(agent))
    except UnknownModel as error:
        raise StreamRefused(str(error)) from error
    opening = Opening()
    if grant.scheduled_call_id is not None:
        agent, opening = await _placed_call_opening(
            services, grant.scheduled_call_id, agent, start, providers.tts
        )
    greeting = services.greetings.prepare(agent, providers.tts) if opening.greet else None
    fallback = services.greetings.prepare(agent, providers.tts, FALLBACK_TEXT)
    shutdown_text = services.settings.shutdown_goodbye_text
    context = CallContext(
        start.call_sid,
        start.stream_sid,
        agent,
        greeting,
        fallback,
        shutdown_text=shutdown_text,
        shutdown_audio=services.greetings.prepare(agent, providers.tts, shutdown_text),
        opening=opening,
    )
    if providers.speech is not None:  # a speech-to-speech agent (`agent_models`)
        renders = SpeechRenders.start(
            agent, lambda text: services.greetings.prepare(agent, providers.tts, text)
        )
        return SpeechCallSession(
            context, providers.speech, services.calls, _sender(websocket), renders
        )
    return CallSession(context, providers, services.calls, _sender(websocket))


async def _placed_call_opening(
    services: Services, scheduled_call_id: str, agent: Agent, start: Start, tts: TextToSpeech
) -> tuple[Agent, Opening]:
    """On a call we placed: the agent with the scheduled call's prompt snapshot as its system
    prompt, and how the call opens (the `opening` our TwiML put on the stream)."""
    scheduled = await services.scheduled_runs.get(scheduled_call_id)
    if scheduled is None:
        raise StreamRefused("the call's scheduled call no longer exists")
    opening = start.custom_parameters.get("opening", "conversation")
    if opening == "conversation":
        agent = agent.model_copy(update={"systemPrompt": scheduled.promptContent or ""})
        wait_s = services.settings.outbound_hello_wait_ms / 1000
        return agent, Opening(greet=False, hello_wait_s=wait_s)
    voicemail = opening == "voicemail"
    text = scheduled.left_on_voicemail if voicemail else scheduled.message
    if text is None:
        raise StreamRefused(f"the scheduled call has no message for its {opening} stream")
    return agent, Opening(
        greet=False,
        hello_wait_s=0 if voicemail else services.settings.outbound_hello_wait_ms / 1000,
        message=text,
        message_audio=services.greetings.prepare(agent, tts, text),
        message_ends_as=EndReason.VOICEMAIL_LEFT if voicemail else EndReason.MESSAGE_DELIVERED,
    )


async def _grant_of_record(calls: CallStore, call_sid: str) -> StreamGrant:
    """For a stream of TwiML a server of an earlier version made (no `grant`): the grant, read
    from the call record (just claimed, so it exists)."""
    call = await calls.get(call_sid)
    if call is None:
        raise StreamRefused("no active call with this CallSid")
    return StreamGrant(call_sid, call.agent_id, call.scheduled_call_id)


async def _unclaimable(calls: CallStore, call_sid: str) -> str:
    """Why the call's stream could not be claimed (read only for a refusal)."""
    call = await calls.get(call_sid)
    if call is None or call.status != "active":
        return "no active call with this CallSid"
    return "this call already has a media stream"


def _sender(websocket: StreamSocket) -> Callable[[str], Awaitable[None]]:
    closed = False

    async def send_text(text: str) -> None:
        """Send to Twilio; once the caller is gone, outbound audio is dropped quietly."""
        nonlocal closed
        if closed:
            return
        try:
            await websocket.send_text(text)
        except _GONE as error:
            closed = True
            log.info("stream closed while sending; dropping outbound audio", error=repr(error))

    return send_text


class Inbound:
    """The stream's frames, parsed; malformed ones are logged and skipped, and a peer that
    sends nothing but garbage is refused (`refusal` then says why). `peer_close_code` is set
    when the peer closed the stream.

    Read (`events`) until the call starts; then the call's `EventFeed` (and, for a
    `FramePusher`, its `FrameSink`). A session that raises on an event is logged, the call ends
    (`failed` is then set) and the events after it are dropped."""

    def __init__(self, websocket: StreamSocket) -> None:
        self._websocket = websocket
        self.refusal: EndReason | None = None
        self.peer_close_code: int | None = None
        self.failed = False
        self.events = self._events()
        self._bad_frames = 0
        self._on_event: EventHandler | None = None
        self._on_end: Callable[[], None] | None = None
        self._context: contextvars.Context | None = None

    async def _events(self) -> AsyncIterator[Event]:
        while True:
            try:
                message = await self._websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                self.peer_close_code = message.get("code", 1005)
                return
            event = self._parse(message.get("text") or message.get("bytes") or b"")
            if event is not None:
                yield event
            elif self.refusal is not None:
                return

    def _parse(self, data: str | bytes) -> Event | None:
        try:
            return parse_event(data)
        except ProtocolError as error:
            self._bad_frames += 1
            MALFORMED_FRAMES.inc()
            log.warning(
                "malformed media-stream frame dropped", reason=str(error), count=self._bad_frames
            )
            if self._bad_frames >= MAX_BAD_FRAMES:
                log.error("too many malformed frames: hanging up the stream")
                self.refusal = EndReason.MALFORMED_FRAMES
            return None

    # the call's EventFeed

    def start(
        self, on_event: EventHandler, on_end: Callable[[], None]
    ) -> Coroutine[Any, Any, None] | None:
        self._on_event, self._on_end = on_event, on_end
        if isinstance(self._websocket, FramePusher):
            # Pushed frames come in the socket's callbacks: they run in the call's context,
            # which holds its log fields (the call SID), as the call's own tasks do.
            self._context = contextvars.copy_context()
            self._websocket.push_to(self)
            return None
        return self._read()

    async def _read(self) -> None:
        async for event in self.events:
            self._deliver(event)
        self._finish()

    # a FramePusher's FrameSink

    def frame(self, data: bytes) -> None:
        if self._on_end is not None and self._context is not None:  # else the call has ended
            self._context.run(self._take, data)

    def closed(self, code: int) -> None:
        self.peer_close_code = code
        if self._context is not None:
            self._context.run(self._finish)

    def _take(self, data: bytes) -> None:
        event = self._parse(data)
        if event is not None:
            self._deliver(event)
        elif self.refusal is not None:
            self._finish()

    def _deliver(self, event: Event) -> None:
        if (on_event := self._on_event) is None:  # the call has ended
            return
        try:
            on_event(event)
        except Exception:  # what the session's own tasks do when they fail
            log.exception("call session failed")
            self.failed = True
            self._finish()

    def _finish(self) -> None:
        """The stream has ended for the call (once)."""
        if (on_end := self._on_end) is not None:
            self._on_event = self._on_end = None
            on_end()


async def _finalize(
    calls: CallStore, start: Start, reason: EndReason, ended_at: datetime | None
) -> None:
    """Record the end of the call (`ended_at`, or now if the session did not say), retrying
    while the database is unreachable; what could not be recorded is logged in full. A call
    handed over to another stream goes on."""
    ended_at = ended_at or datetime.now(UTC)
    try:
        ended = await retry_database(
            "call finalisation",
            lambda: calls.finalize(
                start.call_sid, ended_at=ended_at, reason=reason, stream_sid=start.stream_sid
            ),
            FINISH_WINDOW_S,
        )
    except Exception as error:  # a call's end is logged whatever kept it from being stored
        log.error(
            "call end could not be stored",
            error=repr(error),
            ended_at=ended_at.isoformat(),
            reason=reason,
        )
        return
    log.info("call ended", reason=reason, finalized=ended)
