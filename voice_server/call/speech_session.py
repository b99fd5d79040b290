"""SpeechCallSession: one phone call on one media stream, spoken by a speech-to-speech model.

The call's other shape (`CallSession` runs STT → LLM → TTS). Here one conversation session
(`SpeechToSpeech`) hears the caller and speaks back: Twilio's μ-law goes to it untouched, the
model's μ-law comes back to Twilio untouched (`AgentVoice`), and the model ends the caller's
turns and answers them itself. The call keeps what the pipeline keeps: the transcript written
live (the caller's turns from the model's input transcription, the agent's cut to what was
heard), the figures of each turn, and a nursery that nothing outlives.

Barge-in: when the model hears the caller start speaking over the agent, Twilio's queue is
cleared at once, the response is cancelled, and the model's item is truncated at the audio
the caller heard (from the echoed marks), so the model, the record and the call log hold the
same words. Nothing resumes: the model hears what the caller said and answers it.

The greeting (rendered while the phone rang) plays while the session opens, and the model is
told what of it was heard. A failed session (dropped, refused, rate-limited, a server error)
is answered with the fallback rendered ahead and opened again, once, with the conversation so
far as text; a second failure ends the call with a goodbye.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from media.codec import ulaw_duration_ms
from media.twilio import Event, Mark, Media, Stop
from stores.agents import Agent
from voice_server.call.context import CALLEE_SILENT, CallContext
from voice_server.call.end_reasons import EndReason
from voice_server.call.greetings import greeting_text
from voice_server.call.latency import TurnTimer
from voice_server.call.outbound import Outbound
from voice_server.call.phrases import FALLBACK_TEXT
from voice_server.call.speaker import END_CALL
from voice_server.call.speech_voice import AgentVoice
from voice_server.call.transcript import TranscriptStore, TranscriptWriter, new_entry
from voice_server.log import get_logger
from voice_server.providers.base import (
    AgentAudio,
    AgentText,
    CallerSpeech,
    CallerText,
    ChatMessage,
    ProviderError,
    ResponseDone,
    SpeechConversation,
    SpeechEvent,
    SpeechOptions,
    SpeechToSpeech,
)

log = get_logger(__name__)

SPEECH_GOODBYE_TEXT = "Sorry, I'm having technical trouble. Please call again later. Goodbye!"
Rendered = Awaitable[bytes | None] | None


@dataclass(frozen=True)
class SpeechRenders:
    """What a speech-to-speech call says without its model, rendered as the call starts."""

    failure_goodbye: Rendered = None  # SPEECH_GOODBYE_TEXT
    time_limit_goodbye: Rendered = None  # the agent's maxDurationGoodbyeText

    @classmethod
    def start(cls, agent: Agent, render: Callable[[str], Rendered]) -> SpeechRenders:
        """Start rendering them (`render`: text → its audio, in the agent's voice)."""
        limit = agent.turnTaking.maxDurationGoodbyeText
        return cls(failure_goodbye=render(SPEECH_GOODBYE_TEXT), time_limit_goodbye=render(limit))


class SpeechCallSession:
    def __init__(
        self,
        context: CallContext,
        speech: SpeechToSpeech,
        calls: TranscriptStore,
        send_text: Callable[[str], Awaitable[None]],
        renders: SpeechRenders | None = None,
    ) -> None:
        self._context = context
        self._agent = context.agent
        self._speech = speech
        self._renders = renders or SpeechRenders()
        self._transcript = TranscriptWriter(calls, context.call_sid)
        self._history: list[ChatMessage] = []
        self._untold: list[ChatMessage] = []  # said outside the model, not yet told to it
        # Audio goes out as the model makes it: Twilio queues it (no lead bound, see AgentVoice).
        outbound = Outbound(send_text, context.stream_sid, max_lead_ms=float("inf"))
        self._voice = AgentVoice(outbound, self._transcript, self._history)
        self._conversation: SpeechConversation | None = None
        self._group: asyncio.TaskGroup | None = None
        self._background: list[asyncio.Task[None]] = []  # all but the transcript writer
        self._ended: asyncio.Future[EndReason] = asyncio.get_running_loop().create_future()
        self.ended_at: datetime | None = None
        self._clock = asyncio.get_running_loop().time
        self._pushed_ms = 0.0  # caller audio given to the model, the timeline of its VAD
        self._speech_start_ms = 0
        self._caller_spoke = False
        self._closing = False  # a goodbye is playing: the call ends after it
        self._end_after_response = False  # the model called end_call

    async def run(self, events: AsyncIterator[Event]) -> EndReason:
        """Hold the call until the caller hangs up or the agent ends it; return why it ended."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            group.create_task(self._transcript.run(), name="transcript")
            self._spawn(self._receive(events), "inbound")
            self._spawn(self._open(), "opening")
            self._spawn(self._time_limit(), "time-limit")
            if self._context.opening.message is None:  # a message alone needs no model
                self._spawn(self._converse(), "conversation")
            try:
                reason = await self._ended
            finally:
                for task in self._background:
                    task.cancel()
                self._voice.close()
                self._transcript.close()
        return reason

    def shut_down(self, *, goodbye: bool) -> None:
        """The server is stopping: say the shutdown goodbye and end the call, or end it now."""
        if goodbye and self._group is not None:
            context = self._context
            reason, text = EndReason.SERVER_SHUTDOWN, context.shutdown_text
            self._spawn(self._goodbye(reason, text, context.shutdown_audio), "goodbye")
        else:
            self._end(EndReason.SERVER_SHUTDOWN)

    def _end(self, reason: EndReason) -> None:
        if not self._ended.done():
            self.ended_at = datetime.now(UTC)
            self._ended.set_result(reason)

    # -- inbound ---------------------------------------------------------------------------

    async def _receive(self, events: AsyncIterator[Event]) -> None:
        async for event in events:
            if isinstance(event, Media):
                if self._conversation is not None:
                    self._conversation.push_audio(event.payload)
                    self._pushed_ms += ulaw_duration_ms(len(event.payload))
            elif isinstance(event, Mark):
                self._voice.on_mark(event.name)
            elif isinstance(event, Stop):
                self._end(EndReason.CALLER_HUNG_UP)
                return
            else:  # keys are not passed to a speech-to-speech model
                log.info("event not used by a speech-to-speech call", kind=type(event).__name__)
        self._end(EndReason.STREAM_CLOSED)

    # -- the conversation ------------------------------------------------------------------

    async def _converse(self) -> None:
        """Talk through the model for the whole call. A failed session is answered with the
        fallback and opened again, once; a second failure ends the call politely."""
        for attempt in range(2):
            options = self._options()
            if attempt:  # what the last session said and is still playing: told once heard
                for number in self._voice.unrecorded_model_items():
                    self._spawn(self._tell_when_heard(number), "tell")
            try:
                async with self._speech.open_session(options) as conversation:
                    self._pushed_ms = 0.0  # a new session's audio timeline
                    self._conversation = conversation
                    await self._tell()
                    try:
                        async for event in conversation.events():
                            await self._on_event(event)
                    finally:
                        self._conversation = None
            except ProviderError as error:
                log.error("speech-to-speech session failed", error=str(error), attempt=attempt + 1)
                await self._voice.response_done()  # what came of the answer plays on
                if attempt == 0 and not self._closing:
                    await self._fall_back(str(error))
        goodbye = self._renders.failure_goodbye
        await self._goodbye(EndReason.CONVERSATION_FAILED, SPEECH_GOODBYE_TEXT, goodbye, cut=False)

    def _options(self) -> SpeechOptions:
        agent, turns = self._agent, self._agent.turnTaking
        history, self._untold = tuple(self._history), []  # told as the session opens
        return SpeechOptions(
            model=agent.inferenceModel,
            instructions=agent.systemPrompt,
            voice=agent.ttsVoice,
            transcription_model=agent.sttModel,
            max_output_tokens=agent.maxTokens,
            turn_detection=turns.turnDetection,
            eagerness=turns.eagerness,
            end_silence_ms=turns.endSilenceMs,
            tools=(END_CALL,),
            history=history,
        )

    async def _on_event(self, event: SpeechEvent) -> None:
        if isinstance(event, AgentAudio):
            await self._voice.audio(event.item_id, event.ulaw)
        elif isinstance(event, AgentText):
            self._voice.text(event.item_id, event.delta)
        elif isinstance(event, CallerSpeech):
            await self._on_caller_speech(event)
        elif isinstance(event, CallerText):
            self._on_caller_text(event.text)
        elif isinstance(event, ResponseDone):
            await self._voice.response_done(event.input_tokens, event.output_tokens)
            if self._end_after_response:  # once it has been heard, hang up
                self._spawn(self._finish(EndReason.AGENT_ENDED), "finish")
        elif event.name == END_CALL.name:
            log.info("the agent ended the call")
            self._end_after_response = self._closing = True

    async def _on_caller_speech(self, event: CallerSpeech) -> None:
        self._caller_spoke = True
        if event.started:
            self._speech_start_ms = event.audio_ms
            if self._agent.turnTaking.bargeIn and not self._closing:
                await self._barge_in()
            return
        now = self._clock()
        # The caller's real end of speech: where the model's VAD put it in the audio pushed.
        ended = now - max(0.0, self._pushed_ms - event.audio_ms) / 1000
        audio_in_s = (event.audio_ms - self._speech_start_ms) / 1000
        self._voice.answering(TurnTimer(last_speech=ended, endpoint=now), audio_in_s)

    async def _barge_in(self) -> None:
        """Stop the agent at once; the model forgets what the caller did not hear."""
        cut = await self._voice.interrupt() if self._voice.speaking else None
        if self._conversation is not None:
            if cut is None:
                await self._conversation.cut(None, 0)  # an answer on its way, not heard yet
            else:
                log.info("caller interrupted the agent", heard_ms=cut.heard_ms)
                await self._conversation.cut(cut.item_id, cut.heard_ms)

    def _on_caller_text(self, text: str) -> None:
        if not text:
            log.info("caller spoke but no words were recognised")
            return
        self._transcript.add(new_entry("user", text))
        self._history.append(ChatMessage("user", text))

    async def _tell(self, message: ChatMessage | None = None) -> None:
        """Tell the model what was said outside it (`message`, and anything still untold)."""
        if message is not None:
            self._untold.append(message)
        while self._conversation is not None and self._untold:
            await self._conversation.remember(self._untold.pop(0))

    # -- what the agent says without its model ---------------------------------------------

    async def _open(self) -> None:
        """The agent's first words (`Opening`): the greeting, or on a call we placed, the
        callee's first; after `hello_wait_s` of their silence, the message or the model."""
        opening, agent = self._context.opening, self._agent
        if opening.greet:
            await self._play(greeting_text(agent), self._context.greeting_audio)
            return
        await asyncio.sleep(opening.hello_wait_s)  # the callee's time to speak first
        if opening.message is not None:
            await self._goodbye(opening.message_ends_as, opening.message, opening.message_audio)
        elif not self._caller_spoke and self._conversation is not None:
            await self._conversation.respond(CALLEE_SILENT)

    async def _time_limit(self) -> None:
        turns = self._agent.turnTaking
        await asyncio.sleep(turns.maxCallSeconds)
        text, audio = turns.maxDurationGoodbyeText, self._renders.time_limit_goodbye
        await self._goodbye(EndReason.MAX_DURATION, text, audio)

    async def _fall_back(self, error: str) -> None:
        await self._play(FALLBACK_TEXT, self._context.fallback_audio, error)

    async def _goodbye(
        self, reason: EndReason, text: str, rendered: Rendered, *, cut: bool = True
    ) -> None:
        """Say a last goodbye, then end the call: in place of what is still playing (`cut`), or
        after it (the fallback, when the session failed again)."""
        if self._closing and reason is not EndReason.CONVERSATION_FAILED:
            return
        self._closing = True
        if cut and self._voice.speaking:
            await self._voice.interrupt()
        await self._play(text, rendered)
        await self._finish(reason)

    async def _finish(self, reason: EndReason) -> None:
        """End the call once all that was said has been heard to its end (or cut off)."""
        await self._voice.finished()
        self._end(reason)

    async def _play(self, text: str, rendered: Rendered, error: str | None = None) -> None:
        """Play audio rendered ahead; the model is told what the caller heard of it."""
        audio = await rendered if rendered is not None else None
        if not audio:
            log.error("nothing rendered to say", text=text)
            return
        self._spawn(self._tell_when_heard(await self._voice.play(text, audio, error)), "tell")

    async def _tell_when_heard(self, number: int) -> None:
        if heard := await self._voice.heard(number):
            await self._tell(ChatMessage("assistant", heard))

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        assert self._group is not None, "the call is not running"
        self._background.append(self._group.create_task(work, name=name))
