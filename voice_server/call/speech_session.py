"""SpeechCallSession: one phone call on one media stream, spoken by a speech-to-speech model.

The call's other shape (`CallSession` runs STT → LLM → TTS). Here one model hears the caller and
speaks back (`ModelConversation`), with μ-law passed through both ways (`AgentVoice`). The call
keeps what the pipeline keeps: the transcript written live and cut to what was heard, each
turn's figures, supervision on deadlines, and a nursery that nothing outlives.

What the agent says without its model is rendered ahead, in the agent's TTS voice, and the model
is told what of it the caller heard: the greeting (ready when the stream starts: the webhook
rendered it while the phone rang, so it plays at once while the model's session opens), the
fallback and goodbye when the model fails, the re-prompts and goodbyes of supervision
(`voice_server.call.supervision`: silence, the time limit, a stalled playout) and the server's
shutdown goodbye. A goodbye cannot be interrupted; the call ends once it has been heard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from media.supervision import Action
from media.twilio import Event, Mark, Media, Stop
from stores.agents import Agent
from voice_server.call.context import CALLEE_SILENT, CallContext
from voice_server.call.end_reasons import EndReason
from voice_server.call.feed import EventFeed
from voice_server.call.greetings import greeting_text
from voice_server.call.outbound import Outbound
from voice_server.call.speech_conversation import ModelConversation
from voice_server.call.speech_voice import AgentVoice
from voice_server.call.supervision import Supervision
from voice_server.call.transcript import TranscriptStore, TranscriptWriter
from voice_server.log import get_logger
from voice_server.providers.base import ChatMessage, SpeechToSpeech

log = get_logger(__name__)

SPEECH_GOODBYE_TEXT = "Sorry, I'm having technical trouble. Please call again later. Goodbye!"
Rendered = Awaitable[bytes | None] | None


@dataclass(frozen=True)
class SpeechRenders:
    """What a speech-to-speech call may say without its model, rendered as the call starts
    (each in the agent's voice; renders are cached per agent version)."""

    failure_goodbye: Rendered = None  # SPEECH_GOODBYE_TEXT
    reprompt: Rendered = None
    silence_goodbye: Rendered = None
    time_limit_goodbye: Rendered = None

    @classmethod
    def start(cls, agent: Agent, render: Callable[[str], Rendered]) -> SpeechRenders:
        """Start rendering them (`render`: text → its audio, in the agent's voice)."""
        turns = agent.turnTaking
        return cls(
            failure_goodbye=render(SPEECH_GOODBYE_TEXT),
            reprompt=render(turns.repromptText),
            silence_goodbye=render(turns.silenceGoodbyeText),
            time_limit_goodbye=render(turns.maxDurationGoodbyeText),
        )


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
        self._turns = context.agent.turnTaking
        self._renders = renders or SpeechRenders()
        self._transcript = TranscriptWriter(calls, context.call_sid)
        history: list[ChatMessage] = []
        # Audio goes out as the model makes it: Twilio queues it (no lead bound, see AgentVoice).
        outbound = Outbound(send_text, context.stream_sid, max_lead_ms=float("inf"))
        self._voice = AgentVoice(outbound, self._transcript, history)
        self._supervision = Supervision(self._turns)
        self._model = ModelConversation(
            speech,
            context.agent,
            self._voice,
            transcript=self._transcript,
            history=history,
            supervision=self._supervision,
        )
        self._group: asyncio.TaskGroup | None = None
        self._background: list[asyncio.Task[None]] = []  # all but the transcript writer
        self._ended: asyncio.Future[EndReason] = asyncio.get_running_loop().create_future()
        self.ended_at: datetime | None = None

    async def run(self, feed: EventFeed) -> EndReason:
        """Hold the call until the caller hangs up or the agent ends it; return why it ended."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            group.create_task(self._transcript.run(), name="transcript")
            self._spawn(self._open(), "opening")
            self._spawn(self._supervise(), "supervisor")
            if self._context.opening.message is None:  # a message alone needs no model
                self._spawn(self._converse(), "conversation")
                self._spawn(self._when_the_agent_ends(), "end-call")
            if (reading := feed.start(self.on_event, self.on_stream_end)) is not None:
                self._spawn(reading, "inbound")
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

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        assert self._group is not None, "the call is not running"
        self._background.append(self._group.create_task(work, name=name))

    def on_event(self, event: Event) -> None:
        """One event of the stream (`EventFeed`); those after the call's end are ignored."""
        if self._ended.done():
            return
        if isinstance(event, Media):
            self._model.push_audio(event.payload)
        elif isinstance(event, Mark):
            self._voice.on_mark(event.name)
            self._supervision.wake()  # the agent may have gone quiet
        elif isinstance(event, Stop):
            self._end(EndReason.CALLER_HUNG_UP)
        else:  # keys are not passed to a speech-to-speech model
            log.info("event not used by a speech-to-speech call", kind=type(event).__name__)

    def on_stream_end(self) -> None:
        """The stream ended (`EventFeed`): without a `stop` first, it was closed."""
        self._end(EndReason.STREAM_CLOSED)

    async def _converse(self) -> None:
        await self._model.run(self._context.fallback_audio)
        goodbye = self._renders.failure_goodbye
        await self._goodbye(EndReason.CONVERSATION_FAILED, SPEECH_GOODBYE_TEXT, goodbye, cut=False)

    async def _when_the_agent_ends(self) -> None:
        await self._model.agent_ended.wait()
        await self._finish(EndReason.AGENT_ENDED)

    async def _open(self) -> None:
        """The agent's first words (`Opening`): the greeting, or on a call we placed, the
        callee's first; after `hello_wait_s` of their silence, the message or the model."""
        opening = self._context.opening
        if opening.greet:
            await self._say(greeting_text(self._context.agent), self._context.greeting_audio)
            return
        await asyncio.sleep(opening.hello_wait_s)  # the callee's time to speak first
        if opening.message is not None:
            await self._goodbye(opening.message_ends_as, opening.message, opening.message_audio)
        elif not self._model.caller_spoke:
            await self._model.speak_first(CALLEE_SILENT)

    async def _supervise(self) -> None:
        supervision, voice = self._supervision, self._voice
        while True:
            supervision.observe(
                speaking=voice.speaking,
                progress_at=voice.progress_at,
                outstanding_ms=voice.outstanding_ms,
            )
            if (action := supervision.rules.check(supervision.clock())) is not None:
                await self._act(action)
            await supervision.sleep()

    async def _act(self, action: Action) -> None:
        log.info("supervisor acts", action=action.value)
        turns, renders = self._turns, self._renders
        if action is Action.REPROMPT:
            await self._say(turns.repromptText, renders.reprompt)
        elif action is Action.SILENCE_GOODBYE:
            await self._goodbye(
                EndReason.CALLER_SILENT, turns.silenceGoodbyeText, renders.silence_goodbye
            )
        elif action is Action.MAX_DURATION:
            text, audio = turns.maxDurationGoodbyeText, renders.time_limit_goodbye
            await self._goodbye(EndReason.MAX_DURATION, text, audio)
        elif action is Action.PLAYBACK_STUCK:
            log.warning("marks stopped coming back from Twilio; clearing the playout")
            await self._voice.interrupt()
        else:  # the model answers every turn itself: nothing else can be stuck
            log.warning("supervision action not used by a speech-to-speech call")

    async def _goodbye(
        self, reason: EndReason, text: str, rendered: Rendered, *, cut: bool = True
    ) -> None:
        """Say a last goodbye, then end the call: in place of what is still playing (`cut`), or
        after it (the fallback, when the session failed again)."""
        if self._model.closing and reason is not EndReason.CONVERSATION_FAILED:
            return
        self._model.closing = True
        self._supervision.rules.ending()
        if cut and self._voice.speaking:
            await self._voice.interrupt()
        await self._say(text, rendered)
        await self._finish(reason)

    async def _finish(self, reason: EndReason) -> None:
        """End the call once all that was said has been heard to its end (or cut off)."""
        await self._voice.finished()
        self._end(reason)

    async def _say(self, text: str, rendered: Rendered) -> None:
        """Play audio rendered ahead; the model is told what the caller heard of it."""
        audio = await rendered if rendered is not None else None
        if not audio:
            log.error("nothing rendered to say", text=text)
            return
        self._supervision.responding()
        said = await self._voice.play(text, audio)
        self._spawn(self._model.tell_when_heard(said), "tell")
