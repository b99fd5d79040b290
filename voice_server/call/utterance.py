"""One thing the agent says, and where it is in its life: a state machine with guarded moves.

    PLANNED ──► RENDERING ──► PLAYING ──► HEARD ──► RECORDED
       │            │            │                    ▲
       └────────────┴────────────┴──► CUT ────────────┘

PLANNED: created, its text or audio not there yet (the LLM is thinking, a render is awaited).
RENDERING: its sentences are being synthesised and sent. PLAYING: all sent, Twilio still playing.
HEARD: every mark came back: the caller heard all of it. CUT: it stopped before its end (the
caller interrupted, a newer response replaced it, the call ended). RECORDED: written to the
transcript and the conversation the LLM sees, or superseded by the utterance resuming it.
PLANNED may go straight to PLAYING (nothing to say) or RECORDED (a failure said by another).
Only `voice_server.call.speaker` moves an utterance.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from media.playout import SpokenText


class UtteranceState(enum.Enum):
    PLANNED = "planned"
    RENDERING = "rendering"
    PLAYING = "playing"
    HEARD = "heard"
    CUT = "cut"
    RECORDED = "recorded"


_S = UtteranceState
_MOVES: dict[UtteranceState, frozenset[UtteranceState]] = {
    _S.PLANNED: frozenset({_S.RENDERING, _S.PLAYING, _S.CUT, _S.RECORDED}),
    _S.RENDERING: frozenset({_S.PLAYING, _S.CUT}),
    _S.PLAYING: frozenset({_S.HEARD, _S.CUT}),
    _S.HEARD: frozenset({_S.RECORDED}),
    _S.CUT: frozenset({_S.RECORDED}),
    _S.RECORDED: frozenset(),
}
UNFINISHED = frozenset({_S.PLANNED, _S.RENDERING, _S.PLAYING})


class IllegalMove(RuntimeError):
    """A move the state machine does not allow: a bug in the speaker, never the caller's doing."""


@dataclass(eq=False)
class Utterance:
    number: int
    spoken: SpokenText = field(default_factory=SpokenText)
    planned: str = ""
    """Everything the LLM wrote for this utterance, spoken or not yet."""
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    _state: UtteranceState = UtteranceState.PLANNED

    @property
    def state(self) -> UtteranceState:
        return self._state

    def move(self, new: UtteranceState) -> None:
        if new not in _MOVES[self._state]:
            raise IllegalMove(
                f"utterance {self.number}: cannot go from {self._state.name} to {new.name}"
            )
        self._state = new
