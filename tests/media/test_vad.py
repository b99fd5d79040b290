import numpy as np
import pytest

from media.codec import PCM_FRAME_BYTES
from media.vad import VoiceActivityDetector


def _frames(signal: np.ndarray) -> list[bytes]:
    data = signal.astype(np.int16).tobytes()
    return [data[i : i + PCM_FRAME_BYTES] for i in range(0, len(data), PCM_FRAME_BYTES)]


def _buzz(seconds: float) -> np.ndarray:
    """A voiced-like signal: 150 Hz fundamental with decaying harmonics up to 3.5 kHz."""
    t = np.arange(int(8000 * seconds)) / 8000
    signal = np.zeros_like(t)
    for k in range(1, 24):
        signal += np.sin(2 * np.pi * 150 * k * t) / k
    envelope = 1.0 + 0.3 * np.sin(2 * np.pi * 4 * t)  # a slow syllable-like modulation
    result: np.ndarray = 6000 * envelope * signal / np.max(np.abs(signal))
    return result


def test_silence_is_not_speech() -> None:
    vad = VoiceActivityDetector()
    assert not any(vad.is_speech(frame) for frame in _frames(np.zeros(8000)))


def test_buzz_is_speech() -> None:
    vad = VoiceActivityDetector()
    decisions = [vad.is_speech(frame) for frame in _frames(_buzz(1.0))]
    assert sum(decisions) >= 0.8 * len(decisions)


def test_wrong_frame_size() -> None:
    vad = VoiceActivityDetector()
    with pytest.raises(ValueError, match="320-byte"):
        vad.is_speech(b"\x00" * 160)


def test_bad_aggressiveness() -> None:
    with pytest.raises(ValueError, match=r"0\.\.3"):
        VoiceActivityDetector(4)
