"""Providers for tests that the real code accepts: deterministic, with settable delays.

`EchoingSpeechToText` "recognises" exactly what the caller simulator said: it knows the μ-law
frames of every scripted utterance (espeak-ng renders the same text to the same audio) and names
the texts whose frames it received, in order. Noise and silence match nothing, so they give an
empty final, as a real recogniser hearing a cough would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager

import numpy as np

from media.codec import FRAME_BYTES, ULAW_SILENCE
from voice_server.providers.base import LlmRequest, LlmUsage, SttOptions, SttResult, TtsRequest


def frame_texts(renders: Mapping[str, bytes]) -> dict[bytes, str]:
    """Each sounding 20 ms frame of the scripted utterances, and the text it belongs to (a
    frame found in two texts, such as the "a" that starts two sentences, belongs to neither)."""
    owners: dict[bytes, set[str]] = {}
    for text, ulaw in renders.items():
        for offset in range(0, len(ulaw), FRAME_BYTES):
            frame = ulaw[offset : offset + FRAME_BYTES]
            if len(frame) == FRAME_BYTES and frame != ULAW_SILENCE * FRAME_BYTES:
                owners.setdefault(frame, set()).add(text)
    return {frame: texts.pop() for frame, texts in owners.items() if len(texts) == 1}


def recognise(texts: Mapping[bytes, str], ulaw: bytes) -> str:
    """The scripted texts whose frames `ulaw` holds, in order ("" for noise or silence)."""
    heard: list[str] = []
    for offset in range(0, len(ulaw) - FRAME_BYTES + 1, FRAME_BYTES):
        text = texts.get(ulaw[offset : offset + FRAME_BYTES])
        if text is not None and (not heard or heard[-1] != text):
            heard.append(text)
    return " ".join(heard)


class EchoingSpeechToText:
    """With `final_after_ms`, it endpoints on its own as a streaming recogniser does: a final
    comes that long after the last frame of words, whether or not the session's endpointing
    has ended the turn (OpenAI's Realtime sends it ~480 ms after the speech); and, without
    `empty_finals`, nothing at all comes for a sound with no words in it."""

    def __init__(
        self,
        renders: Mapping[str, bytes],
        final_after_ms: float | None = None,
        *,
        empty_finals: bool = True,
    ) -> None:
        self._texts = frame_texts(renders)
        self._final_after_ms = final_after_ms
        self._empty_finals = empty_finals

    @asynccontextmanager
    async def open_session(self, options: SttOptions) -> AsyncIterator[_EchoingSession]:
        yield _EchoingSession(self._texts, self._final_after_ms, self._empty_finals)


class _EchoingSession:
    punctuates = True  # it says what the caller's script says

    def __init__(
        self, texts: Mapping[bytes, str], final_after_ms: float | None, empty_finals: bool
    ) -> None:
        self._texts = texts
        self._empty_finals = empty_finals
        self._final_after_s = None if final_after_ms is None else final_after_ms / 1000
        self._heard: list[str] = []
        self._results: asyncio.Queue[SttResult] = asyncio.Queue()
        self._own_final: asyncio.TimerHandle | None = None
        self._finalised = False  # this run of speech had its final from our own endpointing

    def push_audio(self, ulaw: bytes, speech: bool) -> None:
        text = self._texts.get(ulaw)
        if text is None:
            return
        if not self._heard or self._heard[-1] != text:
            self._heard.append(text)
        if self._final_after_s is not None:
            if self._own_final is not None:
                self._own_final.cancel()
            loop = asyncio.get_running_loop()
            self._own_final = loop.call_later(self._final_after_s, self._endpointed)

    def _endpointed(self) -> None:
        self._own_final, self._finalised = None, True
        self._final()

    def speech_started(self) -> None:
        self._finalised = False

    def speech_ended(self) -> None:
        if self._own_final is None and not self._finalised and (self._heard or self._empty_finals):
            self._final()

    def _final(self) -> None:
        self._results.put_nowait(SttResult(text=" ".join(self._heard), final=True))
        self._heard = []

    async def results(self) -> AsyncIterator[SttResult]:
        while True:
            yield await self._results.get()


class HangingLanguageModel:
    """Never answers (a provider stream that hangs), until cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def stream(self, request: LlmRequest, usage: LlmUsage) -> AsyncGenerator[str, None]:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled.set()
        yield ""


class ToneTextToSpeech:
    """Speaks instantly: a 440 Hz tone, 60 ms per character, at 8 kHz (nothing to resample)."""

    async def stream(self, request: TtsRequest) -> AsyncGenerator[tuple[int, bytes], None]:
        samples = np.arange(int(8000 * 0.06 * len(request.text)))
        yield 8000, (np.sin(2 * np.pi * 440 * samples / 8000) * 6000).astype(np.int16).tobytes()
