"""An agent's turn-taking settings (`agents.turnTaking`), with defaults tuned for phone calls.

Every field is optional in stored documents: an agent saved before these settings existed, or
one that sets only a few, gets the defaults for the rest.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ACKNOWLEDGEMENTS = (
    "mm-hm", "mhm", "mm", "uh-huh", "uh huh", "hmm", "yeah", "yep", "yes", "okay", "ok",
    "right", "sure", "i see", "got it", "alright", "cool",
)  # fmt: skip
INTERRUPTIONS = ("stop", "wait", "hold on", "hang on", "excuse me", "sorry", "no", "cancel")


class TurnTaking(BaseModel):
    model_config = ConfigDict(extra="ignore")

    endSilenceMs: int = Field(default=550, ge=100, le=5000)
    """Silence after speech that ends the caller's turn."""
    unfinishedEndSilenceMs: int = Field(default=1500, ge=100, le=5000)
    """Silence that ends the turn when the caller's words do not end a sentence ("and", "um",
    a trailing comma, or no full stop from a recogniser that punctuates)."""
    questionEndSilenceMs: int = Field(default=300, ge=100, le=5000)
    """Silence after which a question is answered, when the recogniser ends the turn sooner
    than `endSilenceMs` (never later than it)."""
    turnDetection: Literal["semantic_vad", "server_vad"] = "semantic_vad"
    """How a recogniser that ends turns itself (OpenAI Realtime) does: on what the words mean,
    or on silence alone."""
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    """With `semantic_vad`: how soon the recogniser ends a turn (low waits longest)."""
    minSpeechMs: int = Field(default=120, ge=20, le=2000)
    """Speech needed before a turn (or an interruption) counts as started."""
    bargeIn: bool = True
    """Whether the caller's speech stops the agent (off e.g. for a legal notice)."""
    falseBargeInMaxMs: int = Field(default=350, ge=0, le=3000)
    """An interruption this short with no interrupting word is treated as noise."""
    acknowledgementPhrases: list[str] = Field(default_factory=lambda: list(ACKNOWLEDGEMENTS))
    """Backchannels that never interrupt: the agent resumes where the caller stopped hearing."""
    interruptPhrases: list[str] = Field(default_factory=lambda: list(INTERRUPTIONS))
    """Words that always interrupt, however short."""
    silenceRepromptMs: int = Field(default=8000, ge=1000, le=120_000)
    maxReprompts: int = Field(default=2, ge=0, le=10)
    repromptText: str = "Are you still there?"
    silenceGoodbyeText: str = "I haven't heard from you, so I'll end the call now. Goodbye!"
    maxCallSeconds: int = Field(default=1800, ge=10, le=4 * 3600)
    maxDurationGoodbyeText: str = (
        "We've reached the time limit for this call. Thank you for calling, goodbye!"
    )
    dtmfInterDigitMs: int = Field(default=1500, ge=200, le=10_000)
    """A key sequence ends with '#' or after this long without a key."""
