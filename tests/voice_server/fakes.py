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

from media.codec import FRAME_BYTES, ULAW_SILENCE
from voice_server.providers.base import LlmRequest, LlmUsage, SttOptions, SttResult


class EchoingSpeechToText:
    def __init__(self, renders: Mapping[str, bytes]) -> None:
        self._texts: dict[bytes, str] = {}
        for text, ulaw in renders.items():
            for offset in range(0, len(ulaw), FRAME_BYTES):
                frame = ulaw[offset : offset + FRAME_BYTES]
                if len(frame) == FRAME_BYTES and frame != ULAW_SILENCE * FRAME_BYTES:
                    self._texts.setdefault(frame, text)

    @asynccontextmanager
    async def open_session(self, options: SttOptions) -> AsyncIterator[_EchoingSession]:
        yield _EchoingSession(self._texts)


class _EchoingSession:
    def __init__(self, texts: Mapping[bytes, str]) -> None:
        self._texts = texts
        self._heard: list[str] = []
        self._results: asyncio.Queue[SttResult] = asyncio.Queue()

    def push_audio(self, ulaw: bytes) -> None:
        text = self._texts.get(ulaw)
        if text is not None and (not self._heard or self._heard[-1] != text):
            self._heard.append(text)

    def speech_started(self) -> None:
        pass

    def speech_ended(self) -> None:
        self._results.put_nowait(SttResult(text=" ".join(self._heard), final=True))
        self._heard = []

    async def results(self) -> AsyncIterator[SttResult]:
        while True:
            yield await self._results.get()


class HangingLanguageModel:
    """Never answers (a provider stream that hangs), until cancelled."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def stream(self, request: LlmRequest, usage: LlmUsage) -> AsyncGenerator[str, None]:
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled.set()
        yield ""
