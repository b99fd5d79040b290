"""CallSession: one phone call on one media stream, from Twilio's `start` to the hang-up.

A call is a nursery: one TaskGroup holds the transcript writer, the speech-to-text listener,
the supervisor, the current response and, if its stream must be read, the inbound reader;
nothing outlives the call. The session hears the caller and decides; the `Speaker` speaks and
says what happened.

Inbound (`on_event`, once per 20 ms frame, handed over by the stream's `EventFeed`) does only
codec, VAD and endpointing arithmetic and hands audio to the STT session; it never waits on the
database or a provider. Payloads of other sizes than Twilio's 20 ms are re-framed first.

Turn-taking: the caller's turn ends on the agent's endpointing silence, and the answer starts on
the STT's final transcript; how the words end changes the silence that ends the turn
(`HeldAnswer`: longer after "and" or "um", shorter after a question).
The agent never starts an answer while the caller is talking: a final transcript or a key
sequence that comes mid-turn (a recogniser with its own endpointing, keys then speech) is
recorded at once, and one answer to all of it starts when the turn ends.
Speech ends a key sequence (the keys came first). A response that replaces another clears what
the other left playing and records it, as far as it was heard, before saying anything.

Talking over the agent: speech over it (once it lasts `minSpeechMs` and a second detector has
confirmed it is speech, not a cough or noise) cancels the response and clears Twilio's queue at
once; when the words that follow turn out to be noise or a backchannel, the agent resumes where
the caller stopped hearing it, otherwise the cut utterances are recorded as far as they were
heard. A goodbye (the agent's, the silence or time limit's, the server's) is neither interrupted
nor replaced: words said over it are stored, not answered, and the call ends after it.

Supervision runs on deadlines (`voice_server.call.supervision`): re-prompts, key sequences, the
time limit and the watchdog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from media.codec import ulaw_to_pcm16
from media.framing import Framer
from media.speech_end import SpeechEnd
from media.supervision import Action
from media.turns import Endpointer, EndpointingOptions, SpeechEnded, SpeechStarted
from media.twilio import Dtmf, Event, Mark, Media, Stop
from media.vad import VoiceActivityDetector
from voice_server.call.barge_in import BargeIn
from voice_server.call.context import CALLEE_SILENT, CallContext
from voice_server.call.end_reasons import EndReason
from voice_server.call.feed import EventFeed
from voice_server.call.greetings import greeting_text
from voice_server.call.held_answer import HeldAnswer
from voice_server.call.latency import TurnTimer
from voice_server.call.outbound import Outbound
from voice_server.call.phrases import NOT_HEARD_TEXT, STT_GOODBYE_TEXT
from voice_server.call.rendering import Renderer
from voice_server.call.speaker import END_CALL, Outcome, Said, Speaker
from voice_server.call.supervision import Supervision
from voice_server.call.tasks import CallTasks, Work
from voice_server.call.transcript import TranscriptStore, TranscriptWriter, new_entry
from voice_server.log import get_logger
from voice_server.providers.base import (
    ChatMessage,
    LlmRequest,
    ProviderError,
    SttOptions,
    SttSession,
)
from voice_server.providers.registry import CallProviders

log = get_logger(__name__)

SURE_SPEECH_MS = 500  # speech this long was words, even if no transcript came


class CallSession:
    def __init__(
        self,
        context: CallContext,
        providers: CallProviders,
        calls: TranscriptStore,
        send_text: Callable[[str], Awaitable[None]],
    ) -> None:
        self._context = context
        self._agent = agent = context.agent
        self._turns = agent.turnTaking
        self._providers = providers
        self._transcript = TranscriptWriter(calls, context.call_sid)
        self._history: list[ChatMessage] = []
        outbound = Outbound(send_text, context.stream_sid)
        renderer = Renderer(outbound, providers.tts, model=agent.ttsModel, voice=agent.ttsVoice)
        self._speaker = Speaker(
            outbound,
            renderer,
            llm=providers.llm,
            transcript=self._transcript,
            history=self._history,
            fallback_audio=context.fallback_audio,
        )
        self._framer = Framer()
        self._vad = VoiceActivityDetector()
        self._speech_end = SpeechEnd()
        self._endpointer = Endpointer(
            EndpointingOptions(
                min_speech_ms=self._turns.minSpeechMs, end_silence_ms=self._turns.endSilenceMs
            )
        )
        self._supervision = Supervision(self._turns)
        self._clock = self._supervision.clock
        self._tasks = CallTasks(self._supervision, self._make_way)
        self._barge_in = BargeIn(
            self._turns,
            self._speaker,
            self._tasks,
            self._supervision,
            follow=self._follow,
            interruptible=self._interruptible,
        )
        self._stt: SttSession | None = None
        self._ended: asyncio.Future[EndReason] = asyncio.get_running_loop().create_future()
        # When the call ended: its end, however long the last transcript entries take to store.
        self.ended_at: datetime | None = None
        self._endpoint_at = self._last_final = 0.0
        self._held = HeldAnswer(self._turns, self._endpointer, self._supervision)
        self._closing = False  # a goodbye is being said: the call ends after it
        self._opened = False  # the agent has taken its first turn

    async def run(self, feed: EventFeed) -> EndReason:
        """Hold the call until the caller hangs up or the agent ends it; return why it ended."""
        async with self._tasks as tasks:
            tasks.spawn(self._transcript.run(), name="transcript")
            background = [
                tasks.spawn(self._listen(), name="stt"),
                tasks.spawn(self._supervise(), name="supervisor"),
            ]
            if (waiting := self._open()) is not None:
                background.append(waiting)
            if (reading := feed.start(self.on_event, self.on_stream_end)) is not None:
                background.append(tasks.spawn(reading, name="inbound"))
            try:
                reason = await self._ended
            finally:
                for task in background:
                    task.cancel()
                await tasks.stop_response()
                self._speaker.close()
                self._transcript.close()
        return reason

    def shut_down(self, *, goodbye: bool) -> None:
        """The server is stopping: say the shutdown goodbye and end the call, or end it now
        (which may also be asked before `run`)."""
        if goodbye:
            context = self._context
            reason, text = EndReason.SERVER_SHUTDOWN, context.shutdown_text
            self._goodbye(reason, text, context.shutdown_audio)
        else:
            self._end(EndReason.SERVER_SHUTDOWN)

    def _open(self) -> asyncio.Task[object] | None:
        """The agent's first words (`Opening`): its greeting, or on a call we placed, an answer
        to the callee's first words or, after `hello_wait_s` of their silence, unprompted (the
        task waiting for them is returned)."""
        opening = self._context.opening
        if not opening.greet:
            return self._tasks.spawn(self._wait_for_hello(opening.hello_wait_s), name="hello")
        self._opened = True
        greeting = self._speaker.say(greeting_text(self._agent), self._context.greeting_audio)
        self._tasks.respond(greeting)
        return None

    async def _wait_for_hello(self, wait_s: float) -> None:
        await asyncio.sleep(wait_s)  # the deadline the callee has to speak first
        self._open_if_due()

    def _open_if_due(self) -> None:
        """Speak first, unless the agent has spoken or the callee is saying something (or
        said something whose words are still to come: their final decides)."""
        endpointer = self._endpointer
        if self._opened or self._speaking or endpointer.in_speech:
            return
        if endpointer.last_speech_at <= self._last_final:
            self._speak_first()

    def _speak_first(self) -> None:
        """The agent's turn without the callee's words: the message, or an answer to none."""
        self._opened = True
        opening = self._context.opening
        if opening.message is not None:
            self._goodbye(opening.message_ends_as, opening.message, opening.message_audio)
            return
        self._history.append(ChatMessage("user", CALLEE_SILENT))
        now = self._clock()
        self._respond(self._answer(TurnTimer(last_speech=now, endpoint=now, final=now)))

    def _end(self, reason: EndReason) -> None:
        if not self._ended.done():
            self.ended_at = datetime.now(UTC)
            self._ended.set_result(reason)

    def _interruptible(self) -> bool:
        """The agent is speaking, and not its goodbye (which the caller cannot cut short)."""
        return self._speaking and not self._closing

    @property
    def _speaking(self) -> bool:
        """A response is running, or audio it sent has not finished playing."""
        return self._tasks.responding or self._speaker.playing

    # -- inbound ---------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """One event of the stream (`EventFeed`); those after the call's end are ignored."""
        if self._ended.done():
            return
        if isinstance(event, Media):
            for frame in self._framer.push(event.payload):
                self._on_audio(frame)
        elif isinstance(event, Mark):
            self._speaker.on_mark(event.name)
            if not self._speaking:
                self._supervision.wake()  # the agent went quiet: silence is timed from now
        elif isinstance(event, Dtmf):
            self._on_key(event.digit)
        elif isinstance(event, Stop):
            self._end(EndReason.CALLER_HUNG_UP)
        else:
            log.warning("unexpected event during the call ignored", kind=type(event).__name__)

    def on_stream_end(self) -> None:
        """The stream ended (`EventFeed`): without a `stop` first, it was closed."""
        self._end(EndReason.STREAM_CLOSED)

    def _on_audio(self, ulaw: bytes) -> None:
        now = self._clock()
        pcm = ulaw_to_pcm16(ulaw)
        voiced = self._vad.is_speech(pcm)
        speech = self._speech_end.process(pcm, voiced, now)
        if self._stt is not None:
            self._stt.push_audio(ulaw, speech=speech)
        self._barge_in.heard(pcm)
        decision = self._endpointer.process(voiced, now)
        if isinstance(decision, SpeechStarted):
            self._supervision.rules.caller_speaking()
            if digits := self._supervision.keys.end():
                self._on_keys(digits)
            if self._stt is not None:
                self._stt.speech_started()
            onset_ms = (now - decision.at) * 1000
            self._barge_in.speech_started(onset_ms)
        elif isinstance(decision, SpeechEnded):
            self._endpoint_at = now
            self._barge_in.speech_ended()
            # A recogniser with its own endpointing may have finished this turn already.
            if self._last_final < decision.last_speech_at:
                self._supervision.rules.turn_pending(now)
                self._supervision.wake()
            else:
                self._release()
            if self._stt is not None:
                self._stt.speech_ended()

    def _on_key(self, digit: str) -> None:
        self._barge_in.key_pressed()
        if digits := self._supervision.keys.press(digit, self._clock()):
            self._on_keys(digits)
        self._supervision.wake()

    def _on_keys(self, digits: str) -> None:
        self._barge_in.settle()
        self._transcript.add(new_entry("user", digits, source="dtmf"))
        spaced = " ".join(digits)
        self._history.append(ChatMessage("user", f"(The caller pressed the keys: {spaced})"))
        now = self._clock()
        self._answer_turn(TurnTimer(last_speech=now, endpoint=now, final=now))

    # -- turns -----------------------------------------------------------------------------

    async def _listen(self) -> None:
        """Recognise the caller for the whole call. When the recogniser fails, the caller hears
        the fallback and it is opened again, once; a second failure ends the call politely."""
        for attempt in range(2):
            try:
                await self._recognise()
            except ProviderError as error:
                log.error("speech-to-text failed", error=str(error), attempt=attempt + 1)
                if attempt == 0:
                    self._respond(self._speaker.apologise())
        self._goodbye(EndReason.SPEECH_TO_TEXT_FAILED, STT_GOODBYE_TEXT)

    async def _recognise(self) -> None:
        turns = self._turns
        options = SttOptions(
            model=self._agent.sttModel,
            turn_detection=turns.turnDetection,
            eagerness=turns.eagerness,
            end_silence_ms=turns.endSilenceMs,
        )
        try:
            async with self._providers.stt.open_session(options) as stt:
                self._stt = stt
                async for result in stt.results():
                    if result.final:
                        self._on_final(result.text.strip())
        finally:
            self._stt = None

    def _on_final(self, text: str) -> None:
        now = self._clock()
        self._last_final = now
        self._supervision.rules.turn_started()
        # Judged on the speech that brought this final, ended or not (the recogniser may
        # finish a turn before our endpointing does).
        if self._barge_in.dismissed(text, self._endpointer.speech_ms):
            return
        if not text:
            log.info("caller spoke but no words were recognised")
            self._release()
            self._open_if_due()
            return
        self._barge_in.settle()
        # The turn ended at our endpoint, or earlier if the recogniser endpointed first; its
        # figures count from the caller's real end of speech, before the VAD's hangover.
        ended = self._endpoint_at if self._endpoint_at >= self._endpointer.last_speech_at else now
        timer = TurnTimer(last_speech=self._speech_end.at, endpoint=ended, final=now)
        stt_final = {"stt_final_ms": timer.metrics()["stt_final_ms"]}
        self._transcript.add(new_entry("user", text, metrics=stt_final))
        self._history.append(ChatMessage("user", text))
        punctuated = self._stt is not None and self._stt.punctuates
        self._answer_turn(timer, self._held.silence_for(text, punctuated=punctuated))

    def _answer_turn(self, timer: TurnTimer, silence_s: float | None = None) -> None:
        """Answer what the caller said or keyed in, once their turn is over (`HeldAnswer`)."""
        self._held.hold(timer, silence_s)
        self._release()

    def _release(self) -> None:
        """Give the held answer, if the caller's turn is over."""
        if (timer := self._held.take()) is not None:
            if self._context.opening.message is not None:  # it answers anything said
                self._speak_first()
                return
            self._opened = True
            # With barge-in off, an answer waits for the agent to finish what it is saying.
            self._respond(self._answer(timer), replace=self._turns.bargeIn)

    # -- answering and ending --------------------------------------------------------------

    async def _answer(self, timer: TurnTimer) -> None:
        request = LlmRequest(
            model=self._agent.inferenceModel,
            messages=[ChatMessage("system", self._agent.systemPrompt), *self._history],
            temperature=self._agent.temperature,
            max_tokens=self._agent.maxTokens,
            tools=(END_CALL,),
        )
        await self._follow(await self._speaker.answer(request, timer))

    async def _follow(self, said: Said | None) -> None:
        """After an answer (or a resumed one): end the call if the agent asked to."""
        if said is not None and said.outcome is Outcome.END_CALL:
            log.info("the agent ended the call")
            await self._finish(EndReason.AGENT_ENDED, said)

    def _goodbye(
        self, reason: EndReason, text: str, rendered: Awaitable[bytes | None] | None = None
    ) -> None:
        """Say a last goodbye, then end the call. An interruption still awaiting its words is
        settled first: what was cut is recorded as heard, and nothing resumes over the goodbye."""
        self._barge_in.settle()
        self._respond(self._say_goodbye(reason, text, rendered))
        self._closing = True

    async def _say_goodbye(
        self, reason: EndReason, text: str, rendered: Awaitable[bytes | None] | None = None
    ) -> None:
        await self._finish(reason, await self._speaker.say(text, rendered))

    async def _finish(self, reason: EndReason, goodbye: Said) -> None:
        """End the call once `goodbye` has been heard to its end (or cut off)."""
        self._closing = True
        self._supervision.rules.ending()
        await self._speaker.finished(goodbye)
        self._end(reason)

    # -- supervision -----------------------------------------------------------------------

    async def _supervise(self) -> None:
        supervision = self._supervision
        while True:
            speaker = self._speaker
            supervision.observe(
                speaking=self._speaking,
                progress_at=speaker.progress_at,
                outstanding_ms=speaker.outstanding_ms,
            )
            now = self._clock()
            if digits := supervision.keys.check(now):
                self._on_keys(digits)
            if (action := supervision.rules.check(now)) is not None:
                self._act(action)
            await supervision.sleep()

    def _act(self, action: Action) -> None:
        if action is Action.ANSWER_DUE:  # routine: the caller's pause may be long enough now
            self._release()
            return
        turns = self._turns
        log.info("supervisor acts", action=action.value)
        if action is Action.REPROMPT:
            self._respond(self._speaker.say(turns.repromptText))
        elif action is Action.SILENCE_GOODBYE:
            self._goodbye(EndReason.CALLER_SILENT, turns.silenceGoodbyeText)
        elif action is Action.MAX_DURATION:
            self._goodbye(EndReason.MAX_DURATION, turns.maxDurationGoodbyeText)
        elif action is Action.TURN_STUCK:
            log.warning("the caller's turn ended but no transcript came")
            if self._barge_in.pending:
                self._barge_in.resume()
            elif self._held.held:
                self._release()
            elif self._endpointer.speech_ms >= SURE_SPEECH_MS:  # words, not a noise it ignored
                self._respond(self._speaker.say(NOT_HEARD_TEXT))
            elif not self._opened and not self._speaking:  # an unheard "Hello?"
                self._speak_first()
        elif action is Action.RESPONSE_STUCK:
            log.error("the agent's response stalled; saying the fallback")
            self._respond(self._speaker.apologise("the response produced nothing in time"))
        else:
            log.warning("marks stopped coming back from Twilio; clearing the playout")
            self._tasks.spawn(self._clear_stuck_playout(), "clear")

    def _respond(self, work: Work, *, replace: bool = True) -> None:
        if self._closing:  # nothing replaces the goodbye: late words are stored, not answered
            log.info("the call is ending: no new response")
            work.close()
            return
        self._tasks.respond(work, replace=replace)

    async def _make_way(self, cancelled: bool) -> None:
        """Before a response that replaces another: stop and record what that one left, unless
        a barge-in holds it (what was cut then waits for the caller's words, `BargeIn`)."""
        if (cancelled or self._speaker.playing) and not self._barge_in.pending:
            await self._speaker.make_way()

    async def _clear_stuck_playout(self) -> None:
        await self._tasks.stop_response()
        self._speaker.settle(await self._speaker.interrupt())
