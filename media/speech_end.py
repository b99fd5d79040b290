"""The caller's real end of speech: the last voiced 20 ms frame whose energy stands above the
line's noise floor.

WebRTC's VAD (`media.vad`) goes on calling frames speech for about 100–120 ms after a voice
stops (its hangover smooths over short gaps), so its last voiced frame is late. Timing a turn
from it makes every figure read that much lower than what the caller hears. The energy of the
frames it calls speech says where the voice really ended: the last one clearly louder than the
line is quiet.

The noise floor is tracked per call as the quietest frame of the last two seconds (kept as the
minimum of four half-second blocks, so each frame costs a comparison). Even through continuous
speech the pauses between words reach down to it, and it follows a line that gets noisier within
two seconds. Only frames the VAD calls speech count, so a click in the silence after a turn does
not move its end; when none of a run of voiced frames was loud enough (a caller quieter than the
margin over a noisy line), the VAD's own last voiced frame is the end.
"""

from __future__ import annotations

import audioop
import math
from collections import deque

MARGIN_DB = 6.0
"""How far above the noise floor a frame's level must be to count as speech energy."""
MIN_SPEECH_DB = -60.0
"""No quieter frame counts as speech energy, however quiet the line (digital silence)."""
_SILENCE_DB = -100.0  # the level given to an all-zero frame
_BLOCK_FRAMES = 25  # 500 ms
_BLOCKS = 4  # the floor is the quietest frame of the last 2 s
_MAX_HANGOVER_S = 0.4  # longer than WebRTC's hangover: an older loud frame was another run
_FULL_SCALE = 32768.0


def frame_level_db(pcm16: bytes) -> float:
    """A PCM16 frame's RMS level in dB relative to full scale (`_SILENCE_DB` for all zeros).
    (audioop's RMS: a tenth of numpy's cost on a 320-byte frame, which runs 50 times a second.)"""
    rms = audioop.rms(pcm16, 2)
    if rms <= 0:
        return _SILENCE_DB
    return max(_SILENCE_DB, 20 * math.log10(rms / _FULL_SCALE))


class SpeechEnd:
    """Feed every 20 ms frame with the VAD's decision on it; `at` is when the caller's latest
    speech really ended (seconds, on the clock of `now`; 0 before any speech)."""

    __slots__ = ("_block_min", "_blocks", "_count", "_loud_at", "_voiced_at")

    def __init__(self) -> None:
        self._blocks: deque[float] = deque(maxlen=_BLOCKS)
        self._block_min = math.inf
        self._count = 0
        self._loud_at = 0.0
        self._voiced_at = 0.0

    @property
    def floor_db(self) -> float:
        """The line's noise floor so far (dBFS): its quietest frame of the last 2 s."""
        return min(self._block_min, *self._blocks) if self._blocks else self._block_min

    @property
    def at(self) -> float:
        """End time of the last voiced frame with speech energy, or of the last voiced frame
        when the latest run of them had none."""
        if self._voiced_at - self._loud_at > _MAX_HANGOVER_S:
            return self._voiced_at
        return self._loud_at

    def process(self, pcm16: bytes, voiced: bool, now: float) -> bool:
        """Take the 20 ms frame ending at `now` (seconds) and whether the VAD called it speech;
        returns whether it carries speech energy (voiced, and clearly above the noise floor)."""
        level = frame_level_db(pcm16)
        floor = self.floor_db  # of the frames before this one
        self._track_floor(level)
        if not voiced:
            return False
        self._voiced_at = now
        if level < max(floor + MARGIN_DB, MIN_SPEECH_DB):
            return False
        self._loud_at = now
        return True

    def _track_floor(self, level: float) -> None:
        self._block_min = min(self._block_min, level)
        self._count += 1
        if self._count == _BLOCK_FRAMES:
            self._blocks.append(self._block_min)
            self._block_min, self._count = math.inf, 0
