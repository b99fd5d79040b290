"""A turn's latency: timestamps on the event loop's clock, from the caller's real end of speech
(`media.speech_end`: their last voiced frame with speech energy, not the VAD's hangover) to the
agent's first audio frame out, and the figures kept with the turn."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TurnTimer:
    """Loop-clock timestamps (seconds) of one turn, from the caller's end of speech onwards."""

    last_speech: float
    """The end of the caller's last speech frame."""
    endpoint: float
    """When the turn was judged over (our endpointing, or the recogniser's final if earlier)."""
    final: float = 0.0
    llm_first_token: float = 0.0
    tts_first_byte: float = 0.0
    model_first_audio: float = 0.0
    """A speech-to-speech model's first audio of its answer, as it arrived."""
    first_audio: float = 0.0

    def metrics(self) -> dict[str, float]:
        """The turn's figures in milliseconds, each from the caller's end of speech to the
        moment it names (a moment not reached yet is left out)."""
        moments = {
            "endpointing_ms": self.endpoint,
            "stt_final_ms": self.final,
            "llm_first_token_ms": self.llm_first_token,
            "tts_first_byte_ms": self.tts_first_byte,
            "model_first_audio_ms": self.model_first_audio,
            "first_audio_ms": self.first_audio,
        }
        return {
            name: round((at - self.last_speech) * 1000, 1)
            for name, at in moments.items()
            if at >= self.last_speech
        }
