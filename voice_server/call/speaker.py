"""The agent's side of a call: each utterance's whole life, from planned to recorded.

The speaker is the one owner of every `Utterance` and moves it through its states
(`voice_server.call.utterance`). Its operations — `say`, `answer`, `apologise`,
`interrupt`, `resume` — return what happened (`Said`, `Interruption`); it never calls back into
the session, which runs the operations in the call's response task and decides what follows.
An utterance is written to the transcript, and to the conversation the LLM sees, once: whole
when its last mark has played, or cut to what was heard when the caller interrupted or hung up.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Iterable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import Protocol

from media.playout import SpokenText
from stores.calls import TranscriptEntry
from voice_server.call.latency import TurnTimer
from voice_server.call.outbound import Outbound
from voice_server.call.phrases import FALLBACK_TEXT
from voice_server.call.rendering import Renderer
from voice_server.call.sentences import SentenceSplitter
from voice_server.call.transcript import new_entry
from voice_server.call.utterance import UNFINISHED, Utterance, UtteranceState
from voice_server.log import get_logger
from voice_server.metrics import TURN_LATENCY
from voice_server.providers.base import (
    ChatMessage,
    LanguageModel,
    LlmRequest,
    LlmUsage,
    ProviderError,
    ToolSpec,
)

log = get_logger(__name__)

END_CALL = ToolSpec(
    name="end_call",
    description="End the phone call, after saying goodbye, when the conversation is over.",
)
_State = UtteranceState


class Outcome(enum.Enum):
    SAID = "said"  # all of it was sent (it may still be playing)
    FELL_BACK = "fell-back"  # a provider failed: the fallback apology was said in its place
    END_CALL = "end-call"  # the agent answered and asked to end the call


@dataclass(frozen=True, slots=True)
class Said:
    outcome: Outcome
    utterance: int
    """The utterance to wait for (`Speaker.finished`) before hanging up after it."""


@dataclass(frozen=True, slots=True)
class Interruption:
    """The utterances a barge-in cut off, kept until the session decides whether it was meant:
    `settle` records them as heard so far, `resume` carries on where the caller stopped
    hearing the last one."""

    cut: tuple[int, ...]


class Transcript(Protocol):
    """Where recorded utterances go (`TranscriptWriter`): `add` queues and returns at once."""

    def add(self, entry: TranscriptEntry) -> None: ...


class Speaker:
    def __init__(
        self,
        outbound: Outbound,
        renderer: Renderer,
        *,
        llm: LanguageModel,
        transcript: Transcript,
        history: list[ChatMessage],
        fallback_audio: Awaitable[bytes | None] | None = None,
    ) -> None:
        self._outbound = outbound
        self._renderer = renderer
        self._llm = llm
        self._transcript = transcript
        self._history = history
        self._fallback_audio = fallback_audio
        self._utterances: dict[int, Utterance] = {}
        self._asked: dict[int, tuple[LlmRequest, TurnTimer]] = {}  # each answer's request
        self._recorded = asyncio.Event()
        self._token_at = 0.0

    # -- what the session may look at ----------------------------------------------------------

    @property
    def playing(self) -> bool:
        """Audio was sent that has not played yet."""
        return not self._outbound.playout.idle

    @property
    def progress_at(self) -> float:
        """Loop time of the latest LLM token, chunk sent or mark echoed."""
        return max(self._outbound.progress_at, self._token_at)

    @property
    def outstanding_ms(self) -> float:
        return self._outbound.playout.outstanding_ms()

    # -- operations ----------------------------------------------------------------------------

    async def say(self, text: str, rendered: Awaitable[bytes | None] | None = None) -> Said:
        """Say a fixed text (the greeting, a re-prompt, a goodbye): as `rendered` ahead (the
        greeting while the phone rang), or rendered now if it was not or that failed; the
        fallback if the TTS fails."""
        utterance = self._new()
        utterance.planned = text
        with self._cut_if_cancelled():
            if rendered is not None and (audio := await rendered):
                utterance.move(_State.RENDERING)
                await self._renderer.play(utterance, text, audio)
                return self._sent(utterance, Outcome.SAID)
            return await self._speak(utterance, text)

    async def apologise(self, error: str | None = None) -> Said:
        """Say the fallback for a failure outside speech; `error` goes to the transcript."""
        utterance = self._new()
        utterance.error = error
        with self._cut_if_cancelled():
            return await self._fall_back(utterance)

    async def answer(self, request: LlmRequest, timer: TurnTimer) -> Said:
        """Stream the LLM's answer into speech, sentence by sentence; the fallback if the LLM or
        the TTS fails. `END_CALL` when the LLM called the `end_call` tool."""
        utterance = self._new()
        self._asked[utterance.number] = (request, timer)
        with self._cut_if_cancelled():
            try:
                usage = await self._answer(utterance, request, timer)
            except ProviderError as error:
                log.error("agent answer failed; saying the fallback", error=str(error))
                utterance.error = str(error)
                utterance.metrics = timer.metrics()
                return await self._fall_back(utterance)
        if timer.first_audio:
            TURN_LATENCY.observe(timer.first_audio - timer.last_speech)
        utterance.metrics = {
            **timer.metrics(),
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        }
        ended = any(call.name == END_CALL.name for call in usage.tool_calls)
        return self._sent(utterance, Outcome.END_CALL if ended else Outcome.SAID)

    async def interrupt(self) -> Interruption:
        """Stop playback at once (Twilio's queue is cleared) and cut what was not heard whole.
        The response running must have been cancelled first."""
        await self._outbound.clear()
        for utterance in self._utterances.values():
            if utterance.state in UNFINISHED:
                utterance.move(_State.CUT)
        cut = (u.number for u in self._utterances.values() if u.state is _State.CUT)
        return Interruption(tuple(cut))

    async def make_way(self) -> None:
        """A new response replaces the last one: stop what the last one left playing (Twilio's
        queue is cleared) and record it as far as it was heard, before the new one says
        anything. The response replaced must have finished or been cancelled."""
        if self.playing:
            self.settle(await self.interrupt())
        self.close()  # what was cut before any of it was sent

    def settle(self, interruption: Interruption) -> None:
        """The interruption was meant: record the cut utterances as far as they were heard."""
        for number in interruption.cut:
            self._record(self._utterances[number])

    async def resume(self, interruption: Interruption) -> Said | None:
        """The interruption was not meant: say the rest of the last cut utterance, starting where
        the caller stopped hearing it; an answer of which nothing was heard is asked for again
        and given whole (its model stream was closed, so the rest of it was never written).
        None when nothing of it was left to say."""
        if not interruption.cut:
            return None
        *earlier, last = (self._utterances[number] for number in interruption.cut)
        for utterance in earlier:
            self._record(utterance)
        heard = self._heard(last)
        asked = self._asked.get(last.number)
        if not heard and asked is not None:
            self._record(last)  # nothing heard: nothing to store, unless its error
            request, timer = asked
            return await self.answer(
                request, TurnTimer(timer.last_speech, timer.endpoint, timer.final)
            )
        rest = (last.planned or last.spoken.text)[len(heard) :].strip()
        if not rest:
            self._record(last)
            return None
        continuation = self._new(continues=last)
        continuation.planned = f"{heard} {rest}".strip()
        with self._cut_if_cancelled():
            return await self._speak(continuation, rest)

    def on_mark(self, name: str) -> None:
        """A mark came back from Twilio."""
        chunk = self._outbound.echoed(name)
        utterance = self._utterances.get(chunk.utterance) if chunk else None
        if utterance is not None:
            utterance.spoken.played(name)
            self._check_heard(utterance)

    async def finished(self, said: Said) -> None:
        """Wait until what `said` said has been recorded (played to the end, or cut off)."""
        utterance = self._utterances[said.utterance]
        while utterance.state is not _State.RECORDED:
            self._recorded.clear()
            await self._recorded.wait()

    def close(self) -> None:
        """The call is over: record every utterance not recorded yet, as far as it was heard."""
        for utterance in self._utterances.values():
            self._record(utterance)

    # -- the life of an utterance --------------------------------------------------------------

    def _new(self, continues: Utterance | None = None) -> Utterance:
        """A new utterance; one that `continues` a cut one starts with what was heard of it,
        and supersedes it."""
        utterance = Utterance(number=len(self._utterances) + 1)
        if continues is not None:
            utterance.spoken = SpokenText(self._heard(continues))
            utterance.metrics, utterance.error = continues.metrics, continues.error
            continues.move(_State.RECORDED)
            self._recorded.set()
        self._utterances[utterance.number] = utterance
        return utterance

    async def _speak(self, utterance: Utterance, text: str) -> Said:
        try:
            await self._render(utterance, text, None)
        except ProviderError as error:
            log.error("text-to-speech failed", error=str(error))
            utterance.error = str(error)
            return await self._fall_back(utterance)
        return self._sent(utterance, Outcome.SAID)

    async def _render(self, utterance: Utterance, sentence: str, timer: TurnTimer | None) -> None:
        if utterance.state is _State.PLANNED:
            utterance.move(_State.RENDERING)
        await self._renderer.speak(utterance, sentence, timer)

    async def _answer(
        self, utterance: Utterance, request: LlmRequest, timer: TurnTimer
    ) -> LlmUsage:
        """The LLM is read as fast as it writes, ahead of the speech (which waits for playback
        room), so an interrupted answer still knows the text it had not yet spoken. Both run in
        one scope: leaving it (cancelled, or the TTS failed) closes the LLM stream."""
        usage = LlmUsage()
        sentences: asyncio.Queue[str | ProviderError | None] = asyncio.Queue()
        async with asyncio.TaskGroup() as scope:
            writer = scope.create_task(self._write(utterance, request, usage, timer, sentences))
            try:
                while (sentence := await sentences.get()) is not None:
                    if isinstance(sentence, ProviderError):
                        raise sentence
                    await self._render(utterance, sentence, timer)
            except ProviderError as error:
                writer.cancel()
                failure: ProviderError | None = error
            else:
                failure = None
        if failure is not None:
            raise failure
        return usage

    async def _write(
        self,
        utterance: Utterance,
        request: LlmRequest,
        usage: LlmUsage,
        timer: TurnTimer,
        sentences: asyncio.Queue[str | ProviderError | None],
    ) -> None:
        clock = asyncio.get_running_loop().time
        splitter = SentenceSplitter()

        def plan(pieces: Iterable[str]) -> None:
            for sentence in pieces:
                utterance.planned = f"{utterance.planned} {sentence}".strip()
                sentences.put_nowait(sentence)

        try:
            async with aclosing(self._llm.stream(request, usage)) as tokens:
                async for token in tokens:
                    self._token_at = clock()
                    timer.llm_first_token = timer.llm_first_token or self._token_at
                    plan(splitter.push(token))
            plan(filter(None, [splitter.flush()]))
        except ProviderError as error:
            sentences.put_nowait(error)
        finally:
            sentences.put_nowait(None)

    async def _fall_back(self, failed: Utterance) -> Said:
        """Say the fallback rendered while the phone rang in place of `failed`, whose error it
        carries; what was sent of `failed` plays on and is recorded as usual."""
        fallback = self._new()
        fallback.planned, fallback.error = FALLBACK_TEXT, failed.error
        if failed.state is _State.PLANNED and not failed.spoken.text:
            failed.move(_State.RECORDED)  # nothing of it was said: its error goes with the fallback
        elif failed.state in UNFINISHED:
            self._sent(failed, Outcome.FELL_BACK)
        rendered = self._fallback_audio
        if rendered is not None and (audio := await rendered):
            fallback.move(_State.RENDERING)
            await self._renderer.play(fallback, FALLBACK_TEXT, audio)
        return self._sent(fallback, Outcome.FELL_BACK)

    def _sent(self, utterance: Utterance, outcome: Outcome) -> Said:
        """All of `utterance` has been sent."""
        utterance.move(_State.PLAYING)
        self._check_heard(utterance)
        return Said(outcome, utterance.number)

    def _check_heard(self, utterance: Utterance) -> None:
        if utterance.state is not _State.PLAYING:
            return
        if not utterance.spoken.marked or self._outbound.playout.last_played(utterance.number):
            utterance.move(_State.HEARD)
            self._record(utterance)

    @contextmanager
    def _cut_if_cancelled(self) -> Iterator[None]:
        """While an operation runs: if its task is cancelled (a barge-in, a newer response, the
        call ending), whatever it was still planning or rendering is cut."""
        try:
            yield
        except asyncio.CancelledError:
            for utterance in self._utterances.values():
                if utterance.state in (_State.PLANNED, _State.RENDERING):
                    utterance.move(_State.CUT)
            raise

    def _heard(self, utterance: Utterance) -> str:
        whole = self._outbound.playout.heard_text_end(utterance.number)
        return utterance.spoken.heard(whole, complete=utterance.state is _State.HEARD)

    def _record(self, utterance: Utterance) -> None:
        """Store what the caller heard of `utterance`, once."""
        if utterance.state is _State.RECORDED:
            return
        self._asked.pop(utterance.number, None)  # a recorded answer is never asked again
        if utterance.state in UNFINISHED:
            utterance.move(_State.CUT)
        heard = self._heard(utterance)
        cut = utterance.state is _State.CUT
        utterance.move(_State.RECORDED)
        self._recorded.set()
        if not heard and utterance.error is None:
            return
        self._history.append(ChatMessage("assistant", heard + (" —" if cut else "")))
        if cut:
            self._history.append(
                ChatMessage("system", "The caller interrupted you there and did not hear the rest.")
            )
        self._transcript.add(
            new_entry(
                "assistant",
                heard,
                interrupted=True if cut else None,
                metrics=utterance.metrics or None,
                error=utterance.error,
            )
        )
