"""Turn a TTS provider's PCM stream into what Twilio plays: 8 kHz μ-law in whole 20 ms frames."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from media.codec import FRAME_BYTES, pcm16_to_ulaw
from media.framing import Framer
from media.resample import Resampler
from voice_server.providers.base import TextToSpeech, TtsRequest


async def ulaw_frames(tts: TextToSpeech, request: TtsRequest) -> AsyncGenerator[bytes, None]:
    """Yield runs of whole μ-law frames (a multiple of 160 bytes) as soon as they exist; the
    last run is padded with silence. Closing this iterator closes the TTS stream."""
    framer = Framer(FRAME_BYTES)
    resampler: Resampler | None = None
    async with aclosing(tts.stream(request)) as pieces:
        async for rate, pcm in pieces:
            if resampler is None:
                resampler = Resampler(rate, 8000)
            if frames := framer.push(pcm16_to_ulaw(resampler.process(pcm))):
                yield b"".join(frames)
    tail = framer.push(pcm16_to_ulaw(resampler.flush())) if resampler else []
    last = framer.flush()
    if tail or last:
        yield b"".join(tail) + (last or b"")


async def render_ulaw(tts: TextToSpeech, request: TtsRequest) -> bytes:
    """The whole of one text's audio as μ-law frames (for cached prompts such as greetings)."""
    return b"".join([run async for run in ulaw_frames(tts, request)])
