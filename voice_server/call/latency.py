"""A turn's latency: timestamps on the event loop's clock, from the caller's last speech frame to
the agent's first audio frame out, and the figures kept with the turn."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TurnTimer:
    """Loop-clock timestamps (seconds) of one turn, from the caller's last speech frame onwards."""

    last_speech: float
    endpoint: float
    final: float = 0.0
    llm_first_token: float = 0.0
    tts_requested: float = 0.0
    tts_first_byte: float = 0.0
    first_audio: float = 0.0

    def metrics(self) -> dict[str, float]:
        """The turn's latency figures in milliseconds, each part and the total."""
        parts = {
            "endpointing_ms": self.endpoint - self.last_speech,
            "stt_final_ms": self.final - self.endpoint,
            "llm_first_token_ms": self.llm_first_token - self.final,
            "tts_first_byte_ms": self.tts_first_byte - self.tts_requested,
            "first_audio_ms": self.first_audio - self.last_speech,
        }
        return {name: round(seconds * 1000, 1) for name, seconds in parts.items() if seconds >= 0}
