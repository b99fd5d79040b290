"""A call under test: the real `CallSession` against a fake phone line, on the loop's clock.

`Phone` plays both Twilio and the caller, one 20 ms tick at a time on the event loop's clock
(virtual under `looptime`): each tick sends one caller frame (speech when the caller talks,
silence otherwise) and plays 20 ms of the agent's audio; a `mark` is echoed once the audio sent
before it has played, and a `clear` drops the queue and echoes every pending mark at once, as
Twilio does (twilio.md "Buffering, pacing and marks"). Everything the session sends is kept,
parsed by `media.twilio`, with the time it arrived.

Time is the loop's own clock, which the session reads too (`voice_server.clock`); tests marked
`looptime` run it virtually, jumping to the next timer whenever every task is waiting, so 30 s
of re-prompts take a fraction of a second and every figure is exact. The transcript goes to
`MemoryCallStore` (the one method a call uses of `CallStore`), not to a real database: under
virtual time a wait on the database's socket would let the call's timers fire early.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from media.codec import FRAME_BYTES, ULAW_SILENCE
from media.twilio import Clear, Dtmf, Event, Mark, Media, OutboundMark, OutboundMedia, Stop
from media.twilio import parse_outbound as parse_sent
from stores.agents import Agent
from stores.calls import TranscriptEntry
from tests.stores.factories import agent as agent_fields
from tests.voice_server.call.scripted import PacedTextToSpeech, ScriptedLanguageModel
from tests.voice_server.fakes import EchoingSpeechToText
from voice_server.call.context import CallContext, Opening
from voice_server.call.feed import EventHandler
from voice_server.call.greetings import greeting_text
from voice_server.call.phrases import FALLBACK_TEXT
from voice_server.call.session import CallSession
from voice_server.call.speech_audio import render_ulaw
from voice_server.call.speech_session import SpeechCallSession, SpeechRenders
from voice_server.providers.base import (
    LanguageModel,
    SpeechToSpeech,
    SpeechToText,
    TextToSpeech,
    TtsRequest,
)
from voice_server.providers.registry import CallProviders
from voice_server.simulation.caller_script import CallerScript, Say, cough, render_steps

CALL_SID = "CA" + "1" * 32
STREAM_SID = "MZ" + "2" * 32
GREETING = "Hello, this is the front desk."
SHUTDOWN_TEXT = "We are closing for a moment. Goodbye!"
SILENT_FRAME = ULAW_SILENCE * FRAME_BYTES
TICK_S = 0.020

_speech: dict[str, bytes] = {}  # espeak-ng renders of what callers say, kept for the session


async def speech(texts: Iterable[str]) -> dict[str, bytes]:
    """The caller's voice (trimmed μ-law) for each text, rendered once per test session."""
    missing = [text for text in texts if text not in _speech]
    if missing:
        renders = await render_steps(CallerScript(turns=missing))
        _speech.update(
            {step.text: audio for step, audio in renders.items() if isinstance(step, Say)}
        )
    return {text: _speech[text] for text in texts}


class MemoryCallStore:
    """The transcript of one call in memory, with the loop time each entry was appended."""

    def __init__(self) -> None:
        self.entries: list[TranscriptEntry] = []
        self.appended_at: list[float] = []

    async def append_transcript(self, call_sid: str, entry: TranscriptEntry) -> None:
        assert call_sid == CALL_SID
        self.entries.append(entry)
        self.appended_at.append(asyncio.get_running_loop().time())

    def said(self, role: str) -> list[str]:
        return [entry.text for entry in self.entries if entry.role == role]


@dataclass(frozen=True)
class Sent:
    at: float
    played_ms: float  # the agent audio the caller had heard by then
    message: OutboundMedia | OutboundMark | Clear


@dataclass
class Phone:
    """Twilio's end of the media stream, and the caller on it."""

    voice: dict[str, bytes]
    sent: list[Sent] = field(default_factory=list)
    echoed: dict[str, float] = field(default_factory=dict)  # mark name → time it was echoed
    played_ms: float = 0.0  # agent audio played so far
    playing_since: float | None = None  # start of the agent audio playing now, if any
    _inbound: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    _queue: deque[bytes | str] = field(default_factory=deque)  # agent audio and mark names
    _caller: deque[bytes] = field(default_factory=deque)  # caller frames still to send
    _ticked: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    # -- what the session sends ------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        message = parse_sent(text)
        self.sent.append(Sent(self.now, self.played_ms, message))
        if isinstance(message, OutboundMedia):
            self._queue.append(message.payload)
        elif isinstance(message, OutboundMark):
            self._queue.append(message.name)
        else:
            pending = [item for item in self._queue if isinstance(item, str)]
            self._queue.clear()
            for name in pending:
                self._echo(name)

    def clears(self) -> list[Sent]:
        return [sent for sent in self.sent if isinstance(sent.message, Clear)]

    def audio_sent_after(self, first: Sent, end: float) -> int:
        """Media messages the session sent after `first` and before `end` (messages sent at
        the same loop time are told apart by their order)."""
        later = self.sent[self.sent.index(first) + 1 :]
        return sum(1 for s in later if isinstance(s.message, OutboundMedia) and s.at < end)

    def marks(self) -> list[str]:
        return [s.message.name for s in self.sent if isinstance(s.message, OutboundMark)]

    async def events(self) -> AsyncIterator[Event]:
        while True:
            event = await self._inbound.get()
            yield event
            if isinstance(event, Stop):
                return

    # -- the line --------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick every 20 ms until cancelled."""
        while True:
            await asyncio.sleep(TICK_S)
            frame = self._caller.popleft() if self._caller else SILENT_FRAME
            self._inbound.put_nowait(Media(track="inbound", chunk=0, timestamp=0, payload=frame))
            self._play()
            async with self._ticked:
                self._ticked.notify_all()

    def _play(self) -> None:
        wanted = FRAME_BYTES
        while self._queue:
            head = self._queue[0]
            if isinstance(head, str):
                self._queue.popleft()
                self._echo(head)
            elif wanted == 0:
                break
            else:
                take = head[:wanted]
                wanted -= len(take)
                self.played_ms += len(take) / 8
                if len(take) == len(head):
                    self._queue.popleft()
                else:
                    self._queue[0] = head[len(take) :]
        playing = wanted < FRAME_BYTES
        if not playing:
            self.playing_since = None
        elif self.playing_since is None:
            self.playing_since = self.now

    def _echo(self, name: str) -> None:
        self.echoed[name] = self.now
        self._inbound.put_nowait(Mark(name))

    @property
    def quiet(self) -> bool:
        """Nothing of the agent's is waiting to play."""
        return not self._queue

    # -- the caller ------------------------------------------------------------------------

    async def until(self, condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
        """Let the call go on (in ticks) until `condition` holds."""
        async with asyncio.timeout(timeout_s), self._ticked:
            await self._ticked.wait_for(condition)

    async def wait(self, seconds: float) -> None:
        end = self.now + seconds
        await self.until(lambda: self.now >= end - 1e-9)

    async def say(self, text: str) -> None:
        """Speak `text` (rendered by `speech()` beforehand); returns after its last frame."""
        await self._send_audio(self.voice[text])

    async def cough(self, ms: float = 250.0) -> None:
        await self._send_audio(cough(ms))

    async def _send_audio(self, ulaw: bytes) -> None:
        frames = [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
        self._caller.extend(frame.ljust(FRAME_BYTES, ULAW_SILENCE) for frame in frames)
        await self.until(lambda: not self._caller)

    async def press(self, keys: str, gap_s: float = 0.1) -> float:
        """Press `keys`, `gap_s` apart; returns when the last one was pressed."""
        pressed = self.now
        for key in keys:
            await self.wait(gap_s)
            pressed = self.now
            self._inbound.put_nowait(Dtmf(key))
        return pressed

    async def agent_playing_for(self, seconds: float) -> None:
        await self.until(
            lambda: self.playing_since is not None and self.now - self.playing_since >= seconds
        )

    async def agent_done(self) -> None:
        """Wait for the agent to have said something and gone quiet."""
        await self.until(lambda: self.playing_since is not None)
        await self.until(lambda: self.quiet and self.playing_since is None)

    def hang_up(self) -> None:
        self._inbound.put_nowait(Stop(call_sid=CALL_SID, account_sid="AC" + "3" * 32))


class ReadEvents:
    """The phone's events as a call's `EventFeed`, read by the call's inbound task."""

    def __init__(self, events: AsyncIterator[Event]) -> None:
        self._events = events

    def start(
        self, on_event: EventHandler, on_end: Callable[[], None]
    ) -> Coroutine[Any, Any, None]:
        return self._read(on_event, on_end)

    async def _read(self, on_event: EventHandler, on_end: Callable[[], None]) -> None:
        async for event in self._events:
            on_event(event)
        on_end()


def make_agent(**turn_taking: Any) -> Agent:
    fields = agent_fields("+15551234567", greeting=GREETING, turnTaking=turn_taking).model_dump()
    created = datetime(2025, 1, 2, tzinfo=UTC)
    stored = {"id": "agent-1", "isDeleted": False, "created_at": created, "updated_at": created}
    return Agent.model_validate(fields | stored)


@dataclass
class Call:
    phone: Phone
    store: MemoryCallStore
    agent: Agent
    session: asyncio.Task[str]
    call: CallSession | SpeechCallSession

    async def ended(self, timeout_s: float = 120.0) -> str:
        """Why the call ended (waiting for it to end)."""
        async with asyncio.timeout(timeout_s):
            return await asyncio.shield(self.session)

    def said(self, role: str) -> list[str]:
        return self.store.said(role)


@asynccontextmanager
async def running_call(
    *,
    llm: LanguageModel | None = None,
    tts: TextToSpeech | None = None,
    stt: SpeechToText | None = None,
    speech_to_speech: SpeechToSpeech | None = None,
    opening: Opening | None = None,
    caller_says: Iterable[str] = (),
    **turn_taking: Any,
) -> AsyncIterator[Call]:
    """A call in progress: the greeting and fallback rendered as the voice webhook does (while
    it rang), the session running (speech to speech with `speech_to_speech`); on leaving, the caller
    hangs up if the call is still on."""
    voice = await speech(caller_says)
    agent = make_agent(**turn_taking)
    tts = tts or PacedTextToSpeech()
    providers = CallProviders(
        stt=stt or EchoingSpeechToText(voice), llm=llm or ScriptedLanguageModel(), tts=tts
    )

    def render(text: str) -> asyncio.Task[bytes | None]:
        request = TtsRequest(model=agent.ttsModel, voice=agent.ttsVoice, text=text)
        return asyncio.create_task(render_ulaw(tts, request))

    context = CallContext(
        CALL_SID,
        STREAM_SID,
        agent,
        render(greeting_text(agent)),
        render(FALLBACK_TEXT),
        shutdown_text=SHUTDOWN_TEXT,
        shutdown_audio=render(SHUTDOWN_TEXT),
        opening=opening or Opening(),
    )
    phone, store = Phone(voice), MemoryCallStore()
    session: CallSession | SpeechCallSession
    if speech_to_speech is None:
        session = CallSession(context, providers, store, phone.send_text)
    else:
        renders = SpeechRenders.start(agent, render)
        session = SpeechCallSession(context, speech_to_speech, store, phone.send_text, renders)
    line = asyncio.create_task(phone.run(), name="line")
    running = asyncio.create_task(session.run(ReadEvents(phone.events())), name="session")
    try:
        yield Call(phone, store, agent, running, session)
        if not running.done():
            phone.hang_up()
        await running
    finally:
        for task in (running, line):
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
