"""CallSession: one phone call on one media stream, from Twilio's `start` to the hang-up.

A call is a nursery: one TaskGroup holds the inbound reader, the transcript writer, the
speech-to-text listener, the supervisor and the current agent response; nothing outlives the
call. The inbound path (one call per 20 ms frame) does only codec, VAD and endpointing
arithmetic and hands audio to the STT session; it never waits on the database or a provider.
Payloads of other sizes than Twilio's 20 ms are re-framed first.

Turn-taking: the caller's turn ends on the agent's endpointing silence, and the answer starts on
the STT's final transcript. Speech over the agent (once it lasts `minSpeechMs`) stops the agent
at once; when the words that follow turn out to be noise or a backchannel, the agent resumes
where the caller stopped hearing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from media.codec import ulaw_to_pcm16
from media.dtmf import KeySequence
from media.framing import Framer
from media.supervision import Action, SupervisionOptions, Supervisor
from media.turns import (
    Endpointer,
    EndpointingOptions,
    SpeechEnded,
    SpeechStarted,
    interruption_is_false,
)
from media.twilio import Dtmf, Event, Mark, Media, Stop
from media.vad import VoiceActivityDetector
from stores.agents import Agent
from stores.calls import CallStore, TranscriptEntry
from voice_server.call.agent_voice import AgentVoice
from voice_server.call.end_reasons import EndReason
from voice_server.call.greetings import greeting_text
from voice_server.call.phrases import FALLBACK_TEXT, NOT_HEARD_TEXT, STT_GOODBYE_TEXT
from voice_server.call.response import TurnTimer, Utterance, Voice
from voice_server.call.transcript import TranscriptWriter
from voice_server.log import get_logger
from voice_server.metrics import BARGE_INS, TURN_LATENCY
from voice_server.providers.base import (
    ChatMessage,
    LlmRequest,
    ProviderError,
    SttOptions,
    SttSession,
    ToolSpec,
)
from voice_server.providers.registry import CallProviders

log = get_logger(__name__)

END_CALL = ToolSpec(
    name="end_call",
    description="End the phone call, after saying goodbye, when the conversation is over.",
)
TICK_S = 0.1  # the supervisor's resolution: re-prompts, key sequences, the watchdog
SURE_SPEECH_MS = 500  # speech this long was words, even if no transcript came


@dataclass(frozen=True)
class CallContext:
    call_sid: str
    stream_sid: str
    agent: Agent
    # Renders started while the phone rang (μ-law; None when rendering failed): the greeting,
    # and FALLBACK_TEXT, so that a failing TTS is still answered with speech.
    greeting_audio: Awaitable[bytes | None] | None = None
    fallback_audio: Awaitable[bytes | None] | None = None


@dataclass
class _Interruption:
    utterances: list[Utterance]
    started_at: float


class CallSession:
    def __init__(
        self,
        context: CallContext,
        providers: CallProviders,
        calls: CallStore,
        send_text: Callable[[str], Awaitable[None]],
    ) -> None:
        self._context = context
        self._agent = agent = context.agent
        self._turns = agent.turnTaking
        self._providers = providers
        self._transcript = TranscriptWriter(calls, context.call_sid)
        self._history: list[ChatMessage] = []
        voice = Voice(model=agent.ttsModel, voice=agent.ttsVoice)
        self._voice = AgentVoice(
            send_text=send_text,
            stream_sid=context.stream_sid,
            tts=providers.tts,
            voice=voice,
            transcript=self._transcript,
            history=self._history,
            on_progress=self._progress,
        )
        self._framer = Framer()
        self._vad = VoiceActivityDetector()
        self._endpointer = Endpointer(
            EndpointingOptions(
                min_speech_ms=self._turns.minSpeechMs, end_silence_ms=self._turns.endSilenceMs
            )
        )
        self._supervisor = Supervisor(
            SupervisionOptions(
                silence_reprompt_s=self._turns.silenceRepromptMs / 1000,
                max_reprompts=self._turns.maxReprompts,
                max_call_s=self._turns.maxCallSeconds,
            ),
            started_at=time.monotonic(),
        )
        self._keys = KeySequence(self._turns.dtmfInterDigitMs / 1000)
        self._stt: SttSession | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._ended: asyncio.Future[EndReason] = asyncio.get_running_loop().create_future()
        self._interruption: _Interruption | None = None
        self._was_speaking = False
        self._last_voice = self._endpoint_at = self._last_final = self._speech_ms = 0.0

    async def run(self, events: AsyncIterator[Event]) -> EndReason:
        """Hold the call until the caller hangs up or the agent ends it; return why it ended."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            tasks.create_task(self._transcript.run(), name="transcript")
            background = [
                tasks.create_task(self._receive(events), name="inbound"),
                tasks.create_task(self._listen(), name="stt"),
                tasks.create_task(self._supervise(), name="supervisor"),
            ]
            self._respond(self._greet())
            try:
                reason = await self._ended
            finally:
                for task in background:
                    task.cancel()
                await self._voice.stop()
                self._voice.record_all()
                self._transcript.close()
        return reason

    def _end(self, reason: EndReason) -> None:
        if not self._ended.done():
            self._ended.set_result(reason)

    # -- inbound ---------------------------------------------------------------------------

    async def _receive(self, events: AsyncIterator[Event]) -> None:
        async for event in events:
            if isinstance(event, Media):
                for frame in self._framer.push(event.payload):
                    self._on_audio(frame)
            elif isinstance(event, Mark):
                self._voice.on_echo(event.name)
            elif isinstance(event, Dtmf):
                self._on_key(event.digit)
            elif isinstance(event, Stop):
                self._end(EndReason.CALLER_HUNG_UP)
                return
            else:
                log.warning("unexpected event during the call ignored", kind=type(event).__name__)
        self._end(EndReason.STREAM_CLOSED)

    def _on_audio(self, ulaw: bytes) -> None:
        now = time.monotonic()
        if self._stt is not None:
            self._stt.push_audio(ulaw)
        voiced = self._vad.is_speech(ulaw_to_pcm16(ulaw))
        if voiced:
            self._last_voice = now
        decision = self._endpointer.process(voiced, now)
        if isinstance(decision, SpeechStarted):
            self._supervisor.caller_speaking()
            if self._stt is not None:
                self._stt.speech_started()
            if self._turns.bargeIn and self._voice.speaking and self._interruption is None:
                self._spawn(self._barge_in(decision.at), "barge-in")
        elif isinstance(decision, SpeechEnded):
            self._endpoint_at = now
            self._speech_ms = (decision.last_speech_at - decision.started_at) * 1000
            # A recogniser with its own endpointing may have finished this turn already.
            if self._last_final < decision.last_speech_at:
                self._supervisor.turn_pending(now)
            if self._stt is not None:
                self._stt.speech_ended()

    def _on_key(self, digit: str) -> None:
        if self._turns.bargeIn and self._voice.speaking:
            self._spawn(self._barge_in(time.monotonic(), deliberate=True), "barge-in")
        if digits := self._keys.press(digit, time.monotonic()):
            self._on_keys(digits)

    def _on_keys(self, digits: str) -> None:
        self._settle_interruption(real=True)
        self._transcript.add(_entry("user", digits, source="dtmf"))
        spaced = " ".join(digits)
        self._history.append(ChatMessage("user", f"(The caller pressed the keys: {spaced})"))
        now = time.monotonic()
        self._respond(self._answer(TurnTimer(last_speech=now, endpoint=now, final=now)))

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
                    self._respond(self._say_fallback(self._voice.new_utterance()))
        self._respond(self._say_goodbye(EndReason.SPEECH_TO_TEXT_FAILED, STT_GOODBYE_TEXT))

    async def _recognise(self) -> None:
        options = SttOptions(model=self._agent.sttModel)
        try:
            async with self._providers.stt.open_session(options) as stt:
                self._stt = stt
                async for result in stt.results():
                    if result.final:
                        self._on_final(result.text.strip())
        finally:
            self._stt = None

    def _on_final(self, text: str) -> None:
        now = time.monotonic()
        self._last_final = now
        self._supervisor.turn_started()
        interruption = self._interruption
        if interruption is not None and interruption_is_false(
            text,
            self._speech_ms,
            acknowledgements=self._turns.acknowledgementPhrases,
            interruptions=self._turns.interruptPhrases,
            short_ms=self._turns.falseBargeInMaxMs,
        ):
            log.info("interruption was not meant: resuming", heard=text)
            self._resume(interruption)
            return
        if not text:
            log.info("caller spoke but no words were recognised")
            return
        self._settle_interruption(real=True)
        # The turn ended at our endpoint, or earlier if the recogniser endpointed first.
        ended = self._endpoint_at if self._endpoint_at >= self._last_voice else now
        timer = TurnTimer(last_speech=self._last_voice, endpoint=ended, final=now)
        stt_ms = round((now - ended) * 1000, 1)
        self._transcript.add(_entry("user", text, metrics={"stt_final_ms": stt_ms}))
        self._history.append(ChatMessage("user", text))
        # With barge-in off, an answer waits for the agent to finish what it is saying.
        self._respond(self._answer(timer), replace=self._turns.bargeIn)

    async def _barge_in(self, onset: float, *, deliberate: bool = False) -> None:
        cut = await self._voice.interrupt()
        BARGE_INS.inc()
        log.info("caller interrupted the agent", utterances=len(cut), deliberate=deliberate)
        self._interruption = _Interruption(cut, onset)
        if deliberate:
            self._settle_interruption(real=True)

    def _settle_interruption(self, *, real: bool) -> None:
        interruption, self._interruption = self._interruption, None
        if interruption is not None and real:
            for utterance in interruption.utterances:
                self._voice.record(utterance, interrupted=True)

    def _resume(self, interruption: _Interruption) -> None:
        """Carry on from where the caller stopped hearing the interrupted utterance."""
        self._interruption = None
        last = interruption.utterances[-1] if interruption.utterances else None
        for utterance in interruption.utterances[:-1]:
            self._voice.record(utterance, interrupted=True)
        if last is None:
            return
        heard = self._voice.heard(last)
        rest = (last.planned or last.text)[len(heard) :].strip()
        if not rest:
            self._voice.record(last)
            return
        continuation = self._voice.new_utterance(continues=last)
        continuation.planned = f"{heard} {rest}"
        self._respond(self._say(continuation, rest))

    # -- speaking --------------------------------------------------------------------------

    def _respond(self, work: Coroutine[Any, Any, None], *, replace: bool = True) -> None:
        self._supervisor.agent_busy(time.monotonic())
        self._voice.start(self._spawn, work, replace=replace)

    async def _greet(self) -> None:
        utterance = self._voice.new_utterance()
        greeting = greeting_text(self._agent)
        rendered = self._context.greeting_audio
        if rendered is not None and (audio := await rendered):
            await self._voice.responder.say_rendered(utterance, greeting, audio)
            self._voice.record_if_played(utterance)
        else:
            await self._say(utterance, greeting)

    async def _say(self, utterance: Utterance, text: str) -> None:
        try:
            await self._voice.responder.say(utterance, text)
        except ProviderError as error:
            log.error("text-to-speech failed", error=str(error))
            utterance.error = str(error)
            await self._say_fallback(utterance)
        self._voice.record_if_played(utterance)

    async def _say_fallback(self, utterance: Utterance) -> None:
        fallback = self._voice.new_utterance()
        fallback.error = utterance.error
        utterance.sent_all = True
        if not utterance.text:
            utterance.recorded = True  # nothing of it was said: its error goes with the fallback
        rendered = self._context.fallback_audio
        if rendered is not None and (audio := await rendered):
            await self._voice.responder.say_rendered(fallback, FALLBACK_TEXT, audio)
        self._voice.record_if_played(fallback)

    async def _answer(self, timer: TurnTimer) -> None:
        utterance = self._voice.new_utterance()
        request = LlmRequest(
            model=self._agent.inferenceModel,
            messages=[ChatMessage("system", self._agent.systemPrompt), *self._history],
            temperature=self._agent.temperature,
            max_tokens=self._agent.maxTokens,
            tools=(END_CALL,),
        )
        try:
            usage = await self._voice.responder.answer(
                utterance, self._providers.llm, request, timer
            )
        except ProviderError as error:
            log.error("agent answer failed; saying the fallback", error=str(error))
            utterance.error = str(error)
            utterance.metrics = timer.metrics()
            await self._say_fallback(utterance)
            self._voice.record_if_played(utterance)
            return
        if timer.first_audio:
            TURN_LATENCY.observe(timer.first_audio - timer.last_speech)
        utterance.metrics = {
            **timer.metrics(),
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        }
        self._voice.record_if_played(utterance)
        if any(call.name == END_CALL.name for call in usage.tool_calls):
            log.info("the agent ended the call")
            await self._finish(EndReason.AGENT_ENDED, utterance)

    async def _finish(self, reason: EndReason, goodbye: Utterance | None) -> None:
        """End the call once `goodbye` has been heard to its end (or cut off)."""
        self._supervisor.ending()
        if goodbye is not None:
            await self._voice.played(goodbye)
        self._end(reason)

    async def _say_goodbye(self, reason: EndReason, text: str) -> None:
        utterance = self._voice.new_utterance()
        await self._say(utterance, text)
        await self._finish(reason, utterance)

    # -- supervision -----------------------------------------------------------------------

    def _progress(self) -> None:
        """Audio went out, a mark came back, or the LLM produced a token."""
        now = time.monotonic()
        playout = self._voice.outbound.playout
        self._supervisor.playback(now, playout.outstanding_ms() / 1000)
        speaking = self._voice.speaking
        if speaking:
            self._supervisor.agent_busy(now)
        elif self._was_speaking:
            self._supervisor.agent_idle(now)
        self._was_speaking = speaking

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            if digits := self._keys.check(now):
                self._on_keys(digits)
            if self._was_speaking and not self._voice.speaking:
                self._progress()
            if (action := self._supervisor.check(now)) is not None:
                self._act(action)

    def _act(self, action: Action) -> None:
        turns = self._turns
        log.info("supervisor acts", action=action.value)
        if action is Action.REPROMPT:
            self._respond(self._say(self._voice.new_utterance(), turns.repromptText))
        elif action is Action.SILENCE_GOODBYE:
            self._respond(self._say_goodbye(EndReason.CALLER_SILENT, turns.silenceGoodbyeText))
        elif action is Action.MAX_DURATION:
            self._respond(self._say_goodbye(EndReason.MAX_DURATION, turns.maxDurationGoodbyeText))
        elif action is Action.TURN_STUCK:
            log.warning("the caller's turn ended but no transcript came")
            if self._interruption is not None:
                self._resume(self._interruption)
            elif self._speech_ms >= SURE_SPEECH_MS:  # not just a noise the recogniser ignored
                self._respond(self._say(self._voice.new_utterance(), NOT_HEARD_TEXT))
        elif action is Action.RESPONSE_STUCK:
            log.error("the agent's response stalled; saying the fallback")
            stalled = self._voice.new_utterance()
            stalled.error = "the response produced nothing in time"
            self._respond(self._say_fallback(stalled))
        else:
            log.warning("marks stopped coming back from Twilio; clearing the playout")
            self._spawn(self._clear_stuck_playout(), "clear")

    async def _clear_stuck_playout(self) -> None:
        for utterance in await self._voice.interrupt():
            self._voice.record(utterance)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        assert self._tasks is not None, "the session is not running"
        return self._tasks.create_task(work, name=name)


def _entry(role: str, text: str, **fields: Any) -> TranscriptEntry:
    return TranscriptEntry.model_validate(
        {"role": role, "text": text, "timestamp": datetime.now(UTC), **fields}
    )
