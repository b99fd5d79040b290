"""CallSession: one phone call on one media stream, from Twilio's `start` to the hang-up.

A call is a nursery: one TaskGroup holds the transcript writer, the speech-to-text listener and
the current agent response; nothing outlives the call. The inbound path (one call per 20 ms
frame) does only codec, VAD and endpointing arithmetic and hands audio to the STT session; it
never waits on the database or a provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from media.codec import ulaw_to_pcm16
from media.turns import Endpointer, EndpointingOptions, SpeechStarted
from media.twilio import Dtmf, Event, Mark, Media, Stop
from media.vad import VoiceActivityDetector
from stores.agents import Agent
from stores.calls import CallStore, TranscriptEntry
from voice_server.log import get_logger
from voice_server.metrics import BARGE_INS, TURN_LATENCY
from voice_server.outbound import Outbound
from voice_server.preparation import greeting_text
from voice_server.providers.base import (
    ChatMessage,
    LlmRequest,
    ProviderError,
    SttOptions,
    SttSession,
)
from voice_server.providers.registry import CallProviders
from voice_server.response import Responder, TurnTimer, Utterance, Voice
from voice_server.transcript import TranscriptWriter

log = get_logger(__name__)

FALLBACK_TEXT = "Sorry, I'm having trouble answering right now. Could you say that again?"


@dataclass(frozen=True)
class CallContext:
    call_sid: str
    stream_sid: str
    agent: Agent
    greeting_audio: bytes | None = None  # the greeting pre-rendered as μ-law, when ready


class CallSession:
    def __init__(
        self,
        context: CallContext,
        providers: CallProviders,
        calls: CallStore,
        send_text: Callable[[str], Awaitable[None]],
        endpointing: EndpointingOptions | None = None,
    ) -> None:
        self._context = context
        self._agent = context.agent
        self._providers = providers
        self._transcript = TranscriptWriter(calls, context.call_sid)
        self._outbound = Outbound(send_text, context.stream_sid)
        voice = Voice(model=self._agent.ttsModel, voice=self._agent.ttsVoice)
        self._responder = Responder(self._outbound, providers.tts, voice)
        self._vad = VoiceActivityDetector()
        self._endpointer = Endpointer(endpointing or EndpointingOptions())
        self._stt: SttSession | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._response: asyncio.Task[None] | None = None
        self._utterances: dict[int, Utterance] = {}
        self._history: list[ChatMessage] = []
        self._last_speech = self._endpoint_at = 0.0

    async def run(self, events: AsyncIterator[Event]) -> str:
        """Hold the call until the stream stops or closes; return why it ended."""
        reason = "stream-closed"
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            tasks.create_task(self._transcript.run(), name="transcript")
            listener = tasks.create_task(self._listen(), name="stt")
            self._start_response(self._greet())
            try:
                reason = await self._receive(events)
            finally:
                listener.cancel()
                await self._stop_response()
                for utterance in self._utterances.values():
                    self._record(utterance)
                self._transcript.close()
        return reason

    async def _receive(self, events: AsyncIterator[Event]) -> str:
        async for event in events:
            if isinstance(event, Media):
                self._on_audio(event.payload)
            elif isinstance(event, Mark):
                self._on_mark(event.name)
            elif isinstance(event, Dtmf):
                self._on_dtmf(event.digit)
            elif isinstance(event, Stop):
                return "caller-hung-up"
            else:
                log.warning("unexpected event during the call ignored", kind=type(event).__name__)
        return "stream-closed"

    def _on_audio(self, ulaw: bytes) -> None:
        now = time.monotonic()
        if self._stt is not None:
            self._stt.push_audio(ulaw)
        decision = self._endpointer.process(self._vad.is_speech(ulaw_to_pcm16(ulaw)), now)
        if decision is None:
            return
        if isinstance(decision, SpeechStarted):
            if self._stt is not None:
                self._stt.speech_started()
            if self._agent_speaking():
                self._spawn(self._barge_in(), "barge-in")
        else:
            self._last_speech, self._endpoint_at = decision.last_speech_at, now
            if self._stt is not None:
                self._stt.speech_ended()

    def _on_mark(self, name: str) -> None:
        chunk = self._outbound.echoed(name)
        if chunk is not None and (utterance := self._utterances.get(chunk.utterance)):
            self._record_if_heard(utterance)

    def _on_dtmf(self, digit: str) -> None:
        text = f"(pressed {digit})"
        self._history.append(ChatMessage("user", f"The caller pressed the key {digit}."))
        self._transcript.add(_entry("user", text, source="dtmf"))

    async def _listen(self) -> None:
        options = SttOptions(model=self._agent.sttModel)
        try:
            async with self._providers.stt.open_session(options) as stt:
                self._stt = stt
                async for result in stt.results():
                    if result.final:
                        self._on_final(result.text.strip())
        except ProviderError as error:
            log.error("speech-to-text failed; the caller can no longer be heard", error=str(error))
        finally:
            self._stt = None

    def _on_final(self, text: str) -> None:
        now = time.monotonic()
        if not text:
            log.info("caller spoke but no words were recognised")
            return
        timer = TurnTimer(last_speech=self._last_speech, endpoint=self._endpoint_at, final=now)
        stt_ms = round((now - self._endpoint_at) * 1000, 1)
        self._transcript.add(_entry("user", text, metrics={"stt_final_ms": stt_ms}))
        self._history.append(ChatMessage("user", text))
        self._start_response(self._answer(timer))

    async def _greet(self) -> None:
        utterance = self._new_utterance()
        greeting = greeting_text(self._agent)
        if self._context.greeting_audio:
            await self._responder.say_rendered(utterance, greeting, self._context.greeting_audio)
        else:
            await self._say_or_log(utterance, greeting)
        self._record_if_heard(utterance)

    async def _answer(self, timer: TurnTimer) -> None:
        utterance = self._new_utterance()
        request = LlmRequest(
            model=self._agent.inferenceModel,
            messages=[ChatMessage("system", self._agent.systemPrompt), *self._history],
            temperature=self._agent.temperature,
            max_tokens=self._agent.maxTokens,
        )
        try:
            usage = await self._responder.answer(utterance, self._providers.llm, request, timer)
            if timer.first_audio:
                TURN_LATENCY.observe(timer.first_audio - timer.last_speech)
            utterance.metrics = {
                **timer.metrics(),
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
            }
        except ProviderError as error:
            log.error("agent answer failed; saying the fallback", error=str(error))
            utterance.error = str(error)
            utterance.metrics = timer.metrics()
            await self._say_or_log(utterance, FALLBACK_TEXT)
        self._record_if_heard(utterance)

    async def _say_or_log(self, utterance: Utterance, text: str) -> None:
        try:
            await self._responder.say(utterance, text)
        except ProviderError as error:
            log.error("text-to-speech failed; the caller hears nothing", error=str(error))
            utterance.error = str(error)
            utterance.sent_all = True

    async def _barge_in(self) -> None:
        await self._stop_response()
        cleared = await self._outbound.clear()
        BARGE_INS.inc()
        log.info("caller interrupted the agent", cleared_chunks=len(cleared))
        for utterance in self._utterances.values():
            self._record(utterance)

    def _agent_speaking(self) -> bool:
        running = self._response is not None and not self._response.done()
        return running or not self._outbound.playout.idle

    def _start_response(self, work: Coroutine[Any, Any, None]) -> None:
        previous = self._response
        self._response = self._spawn(self._after(previous, work), "response")

    async def _after(
        self, previous: asyncio.Task[None] | None, work: Coroutine[Any, Any, None]
    ) -> None:
        if previous is not None and not previous.done():
            previous.cancel()
            with suppress(asyncio.CancelledError):
                await previous
        await work

    async def _stop_response(self) -> None:
        if self._response is not None and not self._response.done():
            self._response.cancel()
            with suppress(asyncio.CancelledError):
                await self._response

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        assert self._tasks is not None, "the session is not running"
        return self._tasks.create_task(work, name=name)

    def _new_utterance(self) -> Utterance:
        utterance = Utterance(number=len(self._utterances) + 1)
        self._utterances[utterance.number] = utterance
        return utterance

    def _record_if_heard(self, utterance: Utterance) -> None:
        if utterance.sent_all and self._outbound.playout.last_played(utterance.number):
            self._record(utterance)

    def _record(self, utterance: Utterance) -> None:
        """Store what the caller heard of `utterance`, once; all of it only if it all played."""
        if utterance.recorded:
            return
        utterance.recorded = True
        complete = utterance.sent_all and self._outbound.playout.last_played(utterance.number)
        heard = utterance.text
        if not complete:
            heard = utterance.text[: self._outbound.playout.heard_text_end(utterance.number)]
        heard = heard.strip()
        if not heard and utterance.error is None:
            return
        self._history.append(ChatMessage("assistant", heard))
        self._transcript.add(
            _entry(
                "assistant",
                heard,
                interrupted=None if complete else True,
                metrics=utterance.metrics or None,
                error=utterance.error,
            )
        )


def _entry(role: str, text: str, **fields: Any) -> TranscriptEntry:
    return TranscriptEntry.model_validate(
        {"role": role, "text": text, "timestamp": datetime.now(UTC), **fields}
    )
