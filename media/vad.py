"""Per-frame speech detection on 20 ms of 8 kHz PCM16, using WebRTC's VAD.

Only the frame-level decision lives here; turning a run of decisions into "speech started /
ended" (hysteresis, end-of-turn silence) is `media.turns`.
"""

from __future__ import annotations

import webrtcvad

from media.codec import PCM_FRAME_BYTES, SAMPLE_RATE


class VoiceActivityDetector:
    """Classify single 20 ms frames as speech or not.

    `aggressiveness` is WebRTC's mode, 0 (keeps most audio as speech) to 3 (filters most).
    """

    __slots__ = ("_vad",)

    def __init__(self, aggressiveness: int = 2) -> None:
        if aggressiveness not in range(4):
            raise ValueError(f"aggressiveness must be 0..3, got {aggressiveness}")
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, pcm16_frame: bytes) -> bool:
        """Whether one 20 ms, 8 kHz PCM16 frame (320 bytes) contains speech."""
        if len(pcm16_frame) != PCM_FRAME_BYTES:
            raise ValueError(f"expected a {PCM_FRAME_BYTES}-byte frame, got {len(pcm16_frame)}")
        return bool(self._vad.is_speech(pcm16_frame, SAMPLE_RATE))
