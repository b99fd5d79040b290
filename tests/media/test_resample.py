import numpy as np
import pytest

from media.resample import Resampler


def _sine(freq: float, rate: int, seconds: float, amplitude: float = 10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _feed_in_odd_chunks(resampler: Resampler, data: bytes, sizes: list[int]) -> bytes:
    out = bytearray()
    pos, i = 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out += resampler.process(data[pos : pos + size])
        pos += size
        i += 1
    out += resampler.flush()
    return bytes(out)


def test_24k_to_8k_keeps_duration_and_sine() -> None:
    signal = _sine(440.0, 24000, 1.0)
    out = _feed_in_odd_chunks(Resampler(24000, 8000), signal.tobytes(), [1, 333, 4801, 7, 960])
    samples = np.frombuffer(out, dtype=np.int16)
    assert abs(len(samples) - 8000) <= 4
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * 8000 / len(samples)
    assert abs(peak_hz - 440.0) < 2.0
    # Away from the filter edges, the output matches an ideal 8 kHz sine closely.
    ideal = _sine(440.0, 8000, 1.0).astype(np.float64)
    middle = slice(400, 7600)
    error = samples[middle].astype(np.float64) - ideal[middle]
    assert np.sqrt(np.mean(error**2)) < 200.0


def test_same_rate_passes_through_and_carries_odd_byte() -> None:
    resampler = Resampler(8000, 8000)
    assert resampler.process(b"\x01\x02\x03") == b"\x01\x02"
    assert resampler.process(b"\x04") == b"\x03\x04"
    assert resampler.flush() == b""


def test_odd_trailing_byte_is_carried() -> None:
    resampler = Resampler(16000, 8000)
    pcm = _sine(200.0, 16000, 0.1).tobytes()
    whole = resampler.process(pcm) + resampler.flush()
    split = Resampler(16000, 8000)
    pieces = split.process(pcm[:101]) + split.process(pcm[101:]) + split.flush()
    # soxr's int16 rounding may differ by a unit between chunkings; samples must line up.
    a, b = np.frombuffer(pieces, dtype=np.int16), np.frombuffer(whole, dtype=np.int16)
    assert len(a) == len(b)
    assert np.max(np.abs(a.astype(np.int32) - b)) <= 2


def test_flush_starts_a_fresh_stream() -> None:
    resampler = Resampler(24000, 8000)
    pcm = _sine(300.0, 24000, 0.2).tobytes()
    first = resampler.process(pcm) + resampler.flush()
    second = resampler.process(pcm) + resampler.flush()
    assert first == second


def test_bad_rates_are_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 8000)
