"""The answer to the caller's words, held until their turn is over.

A turn is over when the caller has been quiet long enough, and how long depends on how their
words ended (`media.turns.turn_end`): our endpointing's silence after a sentence, longer after
words that cannot end one ("and", "um", a trailing comma), shorter after a question when the
recogniser ended the turn before our endpointing did. Words that come while an answer is held
join the turn: the answer then covers all of it.
"""

from __future__ import annotations

from media.turns import Endpointer, TurnEnd, turn_end
from stores.turn_taking import TurnTaking
from voice_server.call.latency import TurnTimer
from voice_server.call.supervision import Supervision


class HeldAnswer:
    def __init__(self, turns: TurnTaking, endpointer: Endpointer, supervision: Supervision) -> None:
        self._turns = turns
        self._endpointer = endpointer
        self._supervision = supervision
        self._timer: TurnTimer | None = None
        self._silence_s: float | None = None  # the pause that ends the turn (None: ours)

    @property
    def held(self) -> bool:
        return self._timer is not None

    def silence_for(self, text: str, *, punctuated: bool) -> float | None:
        """The pause after which `text` is answered; None for our endpointing's."""
        end = turn_end(text, punctuated=punctuated)
        if end is TurnEnd.UNFINISHED:
            return max(self._turns.unfinishedEndSilenceMs, self._turns.endSilenceMs) / 1000
        if end is TurnEnd.QUESTION:
            return min(self._turns.questionEndSilenceMs, self._turns.endSilenceMs) / 1000
        return None

    def hold(self, timer: TurnTimer, silence_s: float | None = None) -> None:
        """Hold the answer to a turn until the caller has paused for `silence_s`."""
        self._timer, self._silence_s = timer, silence_s

    def take(self) -> TurnTimer | None:
        """The held answer's timer, if the caller's turn is over (it is then no longer held).
        If it is not over yet, the supervisor looks again when the pause will have lasted."""
        timer = self._timer
        if timer is None or not self._turn_over():
            return None
        self._timer = None
        return timer

    def _turn_over(self) -> bool:
        endpointer, silence_s = self._endpointer, self._silence_s
        if silence_s is None:
            return not endpointer.in_speech
        due = endpointer.last_speech_at + silence_s
        waiting = self._supervision.clock() < due
        self._supervision.rules.answer_due(due if waiting else None)
        if waiting:
            self._supervision.wake()
            return False
        if endpointer.in_speech:
            # A question, answered before our endpointing ended the turn: end it here, so that
            # the caller's next words start a new one (and may interrupt the answer).
            endpointer.reset()
        return True
