"""Text to speech on the stream: TTS audio → 20 ms μ-law frames → chunks and marks to Twilio.

Each sentence is synthesised and sent as soon as it exists; where every mark falls in the text is
written to the utterance's `SpokenText`, so what the caller heard can be told from the marks that
come back. Closing (cancelling) a render closes its TTS stream (`aclosing`).
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing

from media.codec import ulaw_duration_ms
from voice_server.call.latency import TurnTimer
from voice_server.call.outbound import CHUNK_BYTES, Outbound
from voice_server.call.speech_audio import ulaw_frames
from voice_server.call.utterance import Utterance
from voice_server.providers.base import TextToSpeech, TtsRequest


class Renderer:
    """Speaks sentences in one TTS model and voice, or plays audio rendered earlier."""

    def __init__(self, outbound: Outbound, tts: TextToSpeech, *, model: str, voice: str) -> None:
        self._outbound = outbound
        self._tts = tts
        self._model = model
        self._voice = voice
        self._clock = asyncio.get_running_loop().time

    async def play(self, utterance: Utterance, text: str, ulaw: bytes) -> None:
        """Play audio rendered earlier (a cached greeting or fallback) for `text`."""
        start = utterance.spoken.add_sentence(text)
        for offset in range(0, len(ulaw), CHUNK_BYTES):
            await self._send(utterance, ulaw[offset : offset + CHUNK_BYTES], start)
        await self._end_sentence(utterance)

    async def speak(self, utterance: Utterance, sentence: str, timer: TurnTimer | None) -> None:
        """Synthesise `sentence` and send it as it comes; `timer` gets the TTS and first-audio
        timestamps of an answer. Raises `ProviderError` when the TTS fails."""
        start = utterance.spoken.add_sentence(sentence)
        request = TtsRequest(model=self._model, voice=self._voice, text=sentence)
        async with aclosing(ulaw_frames(self._tts, request)) as runs:
            async for run in runs:
                if timer and not timer.tts_first_byte:
                    timer.tts_first_byte = self._clock()
                for offset in range(0, len(run), CHUNK_BYTES):
                    await self._send(utterance, run[offset : offset + CHUNK_BYTES], start)
                    if timer and not timer.first_audio:
                        timer.first_audio = self._clock()
        await self._end_sentence(utterance)

    async def _send(self, utterance: Utterance, chunk: bytes, start: int) -> None:
        """Send a chunk of the sentence at `start` (the latest one): once it has played, the
        sentences before it have been heard whole."""
        name = await self._outbound.send_chunk(utterance.number, chunk, start)
        utterance.spoken.chunk_sent(name, ulaw_duration_ms(len(chunk)))

    async def _end_sentence(self, utterance: Utterance) -> None:
        spoken = utterance.spoken
        name = await self._outbound.send_mark(utterance.number, len(spoken.text))
        spoken.sentence_sent(name)
