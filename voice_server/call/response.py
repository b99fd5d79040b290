"""One agent reply: LLM tokens → sentences → TTS audio → μ-law chunks and marks to Twilio.

Speech starts on the first complete sentence, not the whole answer. Everything the reply waits
on is timed and kept with the turn. Cancelling the task running a reply closes the LLM and TTS
streams (their `aclosing` blocks), which is how barge-in stops it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import aclosing, suppress
from dataclasses import dataclass, field

from voice_server.call.outbound import CHUNK_BYTES, Outbound
from voice_server.call.sentences import SentenceSplitter
from voice_server.call.speech_audio import ulaw_frames
from voice_server.providers.base import (
    LanguageModel,
    LlmRequest,
    LlmUsage,
    TextToSpeech,
    TtsRequest,
)


@dataclass(frozen=True, slots=True)
class _Sent:
    """Where a chunk's mark falls in the utterance: its sentence, and audio up to it (ms)."""

    sentence_start: int
    sentence_end: int
    audio_ms: float


@dataclass
class Utterance:
    """What the agent is saying in one turn, and how much of it has been heard."""

    number: int
    text: str = ""
    planned: str = ""  # everything the LLM wrote for this utterance, spoken or not yet
    floor: int = 0  # text heard before this utterance began (a resumed utterance's first part)
    sent_all: bool = False
    recorded: bool = False
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    marks: dict[str, _Sent] = field(default_factory=dict)
    sentence_ms: dict[int, float] = field(default_factory=dict)  # sentence start → its audio
    last_heard: str | None = None  # the latest mark of this utterance that really played

    def heard_text(self, whole_sentences_end: int) -> str:
        """The text the caller heard, given how far whole sentences were heard.

        Within the sentence playing when it stopped, the heard part is estimated from the share
        of the sentence's audio that played, cut back to a whole word.
        """
        end = max(self.floor, whole_sentences_end)
        sent = self.marks.get(self.last_heard) if self.last_heard else None
        total = self.sentence_ms.get(sent.sentence_start) if sent else None
        if sent is not None and total:
            share = min(1.0, sent.audio_ms / total)
            estimate = sent.sentence_start + int((sent.sentence_end - sent.sentence_start) * share)
            if estimate < sent.sentence_end:
                estimate = self.text.rfind(" ", 0, estimate + 1)
            end = max(end, estimate)
        return self.text[:end].strip()


@dataclass
class TurnTimer:
    """Monotonic timestamps of one turn, from the caller's last speech frame onwards."""

    last_speech: float
    endpoint: float
    final: float = 0.0
    llm_first_token: float = 0.0
    tts_requested: float = 0.0
    tts_first_byte: float = 0.0
    first_audio: float = 0.0

    def metrics(self) -> dict[str, float]:
        """The turn's latency figures in milliseconds, each part and the total."""
        parts = {
            "endpointing_ms": self.endpoint - self.last_speech,
            "stt_final_ms": self.final - self.endpoint,
            "llm_first_token_ms": self.llm_first_token - self.final,
            "tts_first_byte_ms": self.tts_first_byte - self.tts_requested,
            "first_audio_ms": self.first_audio - self.last_speech,
        }
        return {name: round(seconds * 1000, 1) for name, seconds in parts.items() if seconds >= 0}


@dataclass(frozen=True)
class Voice:
    model: str
    voice: str


class Responder:
    """Speaks for one call: fixed texts (greeting, apologies) and LLM answers."""

    def __init__(
        self,
        outbound: Outbound,
        tts: TextToSpeech,
        voice: Voice,
        on_progress: Callable[[], None] = lambda: None,
    ) -> None:
        self._outbound = outbound
        self._tts = tts
        self._voice = voice
        self._on_progress = on_progress

    async def say_rendered(self, utterance: Utterance, text: str, ulaw: bytes) -> None:
        """Play audio rendered earlier (a cached greeting or fallback) for `text`."""
        start = self._add_sentence(utterance, text)
        audio_ms = 0.0
        for offset in range(0, len(ulaw), CHUNK_BYTES):
            audio_ms = await self._send(
                utterance, ulaw[offset : offset + CHUNK_BYTES], start, audio_ms
            )
        await self._end_sentence(utterance, start, audio_ms)
        utterance.sent_all = True

    async def say(self, utterance: Utterance, text: str) -> None:
        await self._speak(utterance, text, None)
        utterance.sent_all = True

    async def answer(
        self, utterance: Utterance, llm: LanguageModel, request: LlmRequest, timer: TurnTimer
    ) -> LlmUsage:
        """Stream the LLM's answer to `request` into speech, sentence by sentence.

        The LLM is read as fast as it writes, ahead of the speech (which waits for playback
        room), so an interrupted answer still knows the text it had not yet spoken."""
        usage = LlmUsage()
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        writer = asyncio.create_task(
            self._write(utterance, llm, request, usage=usage, timer=timer, sentences=sentences)
        )
        try:
            while (sentence := await sentences.get()) is not None:
                await self._speak(utterance, sentence, timer)
            await writer  # re-raises the LLM's error, if it failed
        finally:
            writer.cancel()
            with suppress(asyncio.CancelledError):
                await writer
        utterance.sent_all = True
        return usage

    async def _write(
        self,
        utterance: Utterance,
        llm: LanguageModel,
        request: LlmRequest,
        *,
        usage: LlmUsage,
        timer: TurnTimer,
        sentences: asyncio.Queue[str | None],
    ) -> None:
        splitter = SentenceSplitter()

        def plan(sentence: str) -> None:
            utterance.planned = f"{utterance.planned} {sentence}".strip()
            sentences.put_nowait(sentence)

        try:
            async with aclosing(llm.stream(request, usage)) as tokens:
                async for token in tokens:
                    timer.llm_first_token = timer.llm_first_token or time.monotonic()
                    self._on_progress()
                    for sentence in splitter.push(token):
                        plan(sentence)
            if rest := splitter.flush():
                plan(rest)
        finally:
            sentences.put_nowait(None)

    async def _speak(self, utterance: Utterance, sentence: str, timer: TurnTimer | None) -> None:
        start = self._add_sentence(utterance, sentence)
        request = TtsRequest(model=self._voice.model, voice=self._voice.voice, text=sentence)
        requested = time.monotonic()
        audio_ms = 0.0
        async with aclosing(ulaw_frames(self._tts, request)) as runs:
            async for run in runs:
                if timer and not timer.tts_first_byte:
                    timer.tts_requested, timer.tts_first_byte = requested, time.monotonic()
                for offset in range(0, len(run), CHUNK_BYTES):
                    chunk = run[offset : offset + CHUNK_BYTES]
                    audio_ms = await self._send(utterance, chunk, start, audio_ms)
                    if timer and not timer.first_audio:
                        timer.first_audio = time.monotonic()
        await self._end_sentence(utterance, start, audio_ms)

    def _add_sentence(self, utterance: Utterance, sentence: str) -> int:
        start = len(utterance.text) + (1 if utterance.text else 0)
        utterance.text = f"{utterance.text} {sentence}" if utterance.text else sentence
        return start

    async def _send(
        self, utterance: Utterance, chunk: bytes, start: int, so_far_ms: float
    ) -> float:
        """Send a chunk of the sentence at `start` (the latest one), after `so_far_ms` of its
        audio; returns the sentence's audio sent so far, this chunk included."""
        name = await self._outbound.send_chunk(utterance.number, chunk, start)
        audio_ms = so_far_ms + len(chunk) / 8  # 8 μ-law bytes per millisecond
        utterance.marks[name] = _Sent(start, len(utterance.text), audio_ms)
        return audio_ms

    async def _end_sentence(self, utterance: Utterance, start: int, audio_ms: float) -> None:
        utterance.sentence_ms[start] = audio_ms
        name = await self._outbound.send_mark(utterance.number, len(utterance.text))
        utterance.marks[name] = _Sent(start, len(utterance.text), audio_ms)
