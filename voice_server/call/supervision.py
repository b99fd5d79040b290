"""The call's supervisor on the event loop: it sleeps until the next deadline and wakes early.

The rules are pure (`media.supervision`, `media.dtmf`); this holds them with the one thing they
cannot do, waiting. Nothing polls: the supervising task sleeps until the earliest deadline of
re-prompts, the time limit, the watchdog and a pending key sequence, or until `wake()` says a fact
changed that may have brought a deadline earlier.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

from media.dtmf import KeySequence
from media.supervision import SupervisionOptions, Supervisor
from stores.turn_taking import TurnTaking


class Supervision:
    def __init__(self, turns: TurnTaking) -> None:
        self.clock = asyncio.get_running_loop().time
        self.rules = Supervisor(
            SupervisionOptions(
                silence_reprompt_s=turns.silenceRepromptMs / 1000,
                max_reprompts=turns.maxReprompts,
                max_call_s=turns.maxCallSeconds,
            ),
            started_at=self.clock(),
        )
        self.keys = KeySequence(turns.dtmfInterDigitMs / 1000)
        self._wake = asyncio.Event()
        self._was_speaking = False

    def wake(self) -> None:
        """A fact changed: look at the deadlines again now."""
        self._wake.set()

    def responding(self) -> None:
        """A response starts now."""
        self.rules.agent_busy(self.clock())
        self._was_speaking = True
        self.wake()

    def observe(self, *, speaking: bool, progress_at: float, outstanding_ms: float) -> None:
        """Bring the rules up to date with the agent's side: progress is read when the
        supervisor wakes, not pushed on every token, chunk or mark."""
        self.rules.playback(progress_at, outstanding_ms / 1000)
        if speaking:
            self.rules.agent_busy(progress_at)
        elif self._was_speaking:
            self.rules.agent_idle(self.clock())
        self._was_speaking = speaking

    async def sleep(self) -> None:
        """Until the next deadline, or an earlier `wake()`."""
        self._wake.clear()
        deadlines = [self.rules.next_deadline(), self.keys.next_deadline()]
        deadline = min((at for at in deadlines if at is not None), default=None)
        with suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self._wake.wait()
