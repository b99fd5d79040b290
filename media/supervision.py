"""The call's supervisor: silence re-prompts, the maximum duration, and the watchdog.

Pure: the session reports facts with the time they happened and asks `check(now)` a few times a
second; the answer is at most one action. No state can get stuck unnoticed: a turn the STT never
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


class Supervisor:
    def __init__(self, options: SupervisionOptions, started_at: float) -> None:
        self._options = options
        self._started_at = started_at
        self._idle_since: float | None = None
        self._reprompts = 0
        self._turn_pending_since: float | None = None
        self._response_progress: float | None = None
        self._playback_progress: float | None = None
        self._playback_budget_s = 0.0
        self._ending = False

    def agent_idle(self, now: float) -> None:
        """The agent has finished speaking and everything it said has played."""
        self._idle_since = now
        self._response_progress = None

    def agent_busy(self, now: float) -> None:
        """A response started (or made progress: a token, a chunk of audio)."""
        self._idle_since = None
        self._response_progress = now

    def caller_speaking(self) -> None:
        self._idle_since = None
        self._reprompts = 0

    def turn_pending(self, now: float) -> None:
        """The caller's turn ended; its final transcript is awaited."""
        self._turn_pending_since = now

    def turn_started(self) -> None:
        self._turn_pending_since = None

    def playback(self, now: float, outstanding_s: float) -> None:
        """Audio was sent or a mark echoed; `outstanding_s` is still to be played."""
        self._playback_progress = now if outstanding_s > 0 else None
        self._playback_budget_s = outstanding_s

    def ending(self) -> None:
        """The call is being ended: only the watchdog keeps running."""
        self._ending = True

    def check(self, now: float) -> Action | None:
        return self._watchdog(now) or (None if self._ending else self._limits(now))

    def _watchdog(self, now: float) -> Action | None:
        stuck = self._options.stuck_after_s
        if self._turn_pending_since is not None and now - self._turn_pending_since >= stuck:
            self._turn_pending_since = None
            return Action.TURN_STUCK
        if self._response_progress is not None and now - self._response_progress >= stuck:
            self._response_progress = None
            return Action.RESPONSE_STUCK
        playback = self._playback_progress
        if playback is not None and now - playback >= self._playback_budget_s + stuck:
            self._playback_progress = None
            return Action.PLAYBACK_STUCK
        return None

    def _limits(self, now: float) -> Action | None:
        if now - self._started_at >= self._options.max_call_s:
            self._ending = True
            return Action.MAX_DURATION
        idle = self._idle_since
        if idle is None or now - idle < self._options.silence_reprompt_s:
            return None
        self._idle_since = None
        if self._reprompts < self._options.max_reprompts:
            self._reprompts += 1
            return Action.REPROMPT
        self._ending = True
        return Action.SILENCE_GOODBYE
