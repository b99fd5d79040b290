"""TTS PCM at any rate and chunking → 8 kHz μ-law in whole 20 ms frames; closing stops the TTS."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from itertools import cycle

import numpy as np

from media.codec import ulaw_to_pcm16
from voice_server.call.speech_audio import render_ulaw, ulaw_frames
from voice_server.providers.base import TtsRequest

REQUEST = TtsRequest(model="fake", voice="fake", text="Hello.")
ODD_SIZES = (1, 333, 4097, 7, 1001, 2, 59)


def tone(seconds: float, rate: int = 24_000, hz: float = 440.0) -> bytes:
    """A sine tone as PCM16, loud enough to survive μ-law."""
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * 12_000).astype("<i2").tobytes()


class FakeTextToSpeech:
    """Streams given PCM in pieces of the given odd sizes; records how far it got."""

    def __init__(self, pcm: bytes, sizes: Sequence[int] = ODD_SIZES, rate: int = 24_000) -> None:
        self.pcm = pcm
        self.sizes = sizes
        self.rate = rate
        self.requests: list[TtsRequest] = []
        self.pieces_sent = 0
        self.closed = False

    async def stream(self, request: TtsRequest) -> AsyncGenerator[tuple[int, bytes], None]:
        self.requests.append(request)
        try:
            offset = 0
            for size in cycle(self.sizes):
                if offset >= len(self.pcm):
                    break
                self.pieces_sent += 1
                yield self.rate, self.pcm[offset : offset + size]
                offset += size
        finally:
            self.closed = True


class EndlessTextToSpeech:
    """Never stops speaking unless it is closed."""

    def __init__(self) -> None:
        self.pieces_sent = 0
        self.closed = False

    async def stream(self, request: TtsRequest) -> AsyncGenerator[tuple[int, bytes], None]:
        piece = tone(0.01)[:-1]  # 479 bytes: an odd size
        try:
            while True:
                self.pieces_sent += 1
                yield 24_000, piece
        finally:
            self.closed = True


async def test_every_run_is_whole_160_byte_frames() -> None:
    tts = FakeTextToSpeech(tone(0.53))

    runs = [run async for run in ulaw_frames(tts, REQUEST)]

    assert len(runs) > 1
    assert all(len(run) > 0 and len(run) % 160 == 0 for run in runs)
    assert tts.requests == [REQUEST]


async def test_length_matches_the_resampled_duration() -> None:
    # 0.53 s at 24 kHz is 12,720 samples → 4,240 samples at 8 kHz → 26.5 frames → 27 frames.
    audio = await render_ulaw(FakeTextToSpeech(tone(0.53)), REQUEST)
    assert len(audio) == 27 * 160


async def test_exact_whole_frames_are_not_padded() -> None:
    # 0.5 s at 24 kHz → 4,000 samples at 8 kHz: exactly 25 frames.
    audio = await render_ulaw(FakeTextToSpeech(tone(0.5)), REQUEST)
    assert len(audio) == 25 * 160


async def test_length_does_not_depend_on_piece_sizes() -> None:
    pcm = tone(0.53)
    whole = await render_ulaw(FakeTextToSpeech(pcm, sizes=[len(pcm)]), REQUEST)
    odd = await render_ulaw(FakeTextToSpeech(pcm), REQUEST)
    assert len(odd) == len(whole) == 27 * 160


async def test_tone_survives_the_conversion() -> None:
    audio = await render_ulaw(FakeTextToSpeech(tone(0.5)), REQUEST)

    samples = np.frombuffer(ulaw_to_pcm16(audio), dtype="<i2").astype(np.float64)
    middle = samples[800:3200]  # away from the filter's edges
    rms = math.sqrt(float(np.mean(middle**2)))
    assert 12_000 / math.sqrt(2) * 0.9 < rms < 12_000 / math.sqrt(2) * 1.1
    spectrum = np.abs(np.fft.rfft(middle))
    peak_hz = float(np.argmax(spectrum)) * 8000 / len(middle)
    assert abs(peak_hz - 440) < 10


async def test_last_frame_is_padded_with_silence() -> None:
    audio = await render_ulaw(FakeTextToSpeech(tone(0.53)), REQUEST)
    # 4,240 samples of tone, then 80 bytes of μ-law silence.
    assert audio[4240:] == b"\xff" * 80


async def test_8khz_audio_passes_at_its_own_length() -> None:
    pcm = tone(0.3, rate=8000)
    audio = await render_ulaw(FakeTextToSpeech(pcm, rate=8000), REQUEST)
    assert len(audio) == 15 * 160


async def test_no_audio_gives_no_frames() -> None:
    tts = FakeTextToSpeech(b"")
    assert await render_ulaw(tts, REQUEST) == b""
    assert tts.closed


async def test_whole_stream_closes_the_tts_stream() -> None:
    tts = FakeTextToSpeech(tone(0.2))
    await render_ulaw(tts, REQUEST)
    assert tts.closed


async def test_closing_the_iterator_early_closes_the_tts_stream() -> None:
    tts = EndlessTextToSpeech()

    async with aclosing(ulaw_frames(tts, REQUEST)) as frames:
        first = await anext(frames)
        assert len(first) % 160 == 0
        assert not tts.closed

    assert tts.closed
