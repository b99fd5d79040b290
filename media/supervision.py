"""The call's supervisor: silence re-prompts, the maximum duration, a held answer, the watchdog.

Pure and on deadlines: the session reports facts with the time they happened, sleeps until
`next_deadline()` (or until a new fact may have moved it earlier), then asks `check(now)`, whose
answer is at most one action. No state can get stuck unnoticed: a turn the STT never
finished, a response that stopped producing audio, or audio Twilio never confirmed playing are
each reported once they have been stuck for `stuck_after_s`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SupervisionOptions:
    silence_reprompt_s: float = 8.0
    max_reprompts: int = 2
    max_call_s: float = 1800.0
    stuck_after_s: float = 5.0


class Action(enum.Enum):
    REPROMPT = "reprompt"  # the caller has been silent: ask if they are still there
    SILENCE_GOODBYE = "silence"  # silent after every re-prompt: say goodbye, end the call
    MAX_DURATION = "max-duration"  # the call is at its time limit: say goodbye, end the call
    TURN_STUCK = "turn-stuck"  # the caller stopped speaking but no transcript ever came
    RESPONSE_STUCK = "response-stuck"  # a response has produced nothing for too long
    PLAYBACK_STUCK = "playback-stuck"  # audio was sent but its marks never came back
    ANSWER_DUE = "answer-due"  # the caller may have paused long enough for a held answer


class Supervisor:
    def __init__(self, options: SupervisionOptions, started_at: float) -> None:
        self._options = options
        self._started_at = started_at
        self._idle_since: float | None = None
        self._reprompts = 0
        self._turn_pending_since: float | None = None
        self._response_progress: float | None = None
        self._busy_seen = float("-inf")
        self._playback_progress: float | None = None
        self._playback_seen = float("-inf")
        self._playback_budget_s = 0.0
        self._ending = False
        self._answer_due: float | None = None

    def agent_idle(self, now: float) -> None:
        """The agent has finished speaking and everything it said has played."""
        self._idle_since = now
        self._response_progress = None

    def agent_busy(self, at: float) -> None:
        """A response started, or made progress (a token, a chunk of audio), at `at`. A report
        no later than one already seen changes nothing, so progress may be reported late."""
        if at <= self._busy_seen:
            return
        self._busy_seen = at
        self._idle_since = None
        self._response_progress = at

    def caller_speaking(self) -> None:
        self._idle_since = None
        self._reprompts = 0

    def turn_pending(self, now: float) -> None:
        """The caller's turn ended; its final transcript is awaited."""
        self._turn_pending_since = now

    def turn_started(self) -> None:
        self._turn_pending_since = None

    def answer_due(self, at: float | None) -> None:
        """An answer is held until the caller's pause lasts until `at` (None: no longer)."""
        self._answer_due = at

    def playback(self, at: float, outstanding_s: float) -> None:
        """Audio was last sent or a mark echoed at `at`; `outstanding_s` is still to be played.
        Like `agent_busy`, a report of no new progress changes nothing (unless all played)."""
        if outstanding_s <= 0:
            self._playback_progress = None
        elif at > self._playback_seen:
            self._playback_progress = at
            self._playback_budget_s = outstanding_s
        self._playback_seen = max(self._playback_seen, at)

    def ending(self) -> None:
        """The call is being ended: only the watchdog keeps running."""
        self._ending = True

    def next_deadline(self) -> float | None:
        """When `check` will next have something to say, if no new fact comes first."""
        return min((at for _, at in self._deadlines() if at is not None), default=None)

    def check(self, now: float) -> Action | None:
        """The most urgent action due at `now`, if any (watchdog first)."""
        for action, at in self._deadlines():
            if at is not None and now >= at:
                self._fired(action)
                return action
        return None

    def _deadlines(self) -> list[tuple[Action, float | None]]:
        """Each rule's deadline, most urgent rule first."""
        stuck = self._options.stuck_after_s
        playback = self._playback_progress
        deadlines = [
            (Action.TURN_STUCK, _after(self._turn_pending_since, stuck)),
            (Action.RESPONSE_STUCK, _after(self._response_progress, stuck)),
            (Action.PLAYBACK_STUCK, _after(playback, self._playback_budget_s + stuck)),
        ]
        if self._ending:
            return deadlines
        silent = self._reprompts < self._options.max_reprompts
        return [
            *deadlines,
            (Action.ANSWER_DUE, self._answer_due),
            (Action.MAX_DURATION, self._started_at + self._options.max_call_s),
            (
                Action.REPROMPT if silent else Action.SILENCE_GOODBYE,
                _after(self._idle_since, self._options.silence_reprompt_s),
            ),
        ]

    def _fired(self, action: Action) -> None:
        if action is Action.TURN_STUCK:
            self._turn_pending_since = None
        elif action is Action.RESPONSE_STUCK:
            self._response_progress = None
        elif action is Action.PLAYBACK_STUCK:
            self._playback_progress = None
        elif action is Action.ANSWER_DUE:
            self._answer_due = None
        elif action is Action.MAX_DURATION:
            self._ending = True
        else:
            self._idle_since = None
            if action is Action.REPROMPT:
                self._reprompts += 1
            else:
                self._ending = True


def _after(since: float | None, seconds: float) -> float | None:
    return None if since is None else since + seconds
