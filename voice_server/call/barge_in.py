"""What happens when the caller talks over the agent.

At a speech onset over the agent (once it lasts `minSpeechMs`), or a key press, the response is
cancelled (its LLM and TTS streams closed) and Twilio's queue cleared at once, so the agent
stops within a frame or two. What was cut is held as an `Interruption` until the caller's words
come in: noise, a cough or a backchannel ("mm-hm") was not meant to interrupt, and the agent
resumes where the caller stopped hearing it (an answer of which nothing was heard is asked for
again); real words (or a key press) settle it, and the cut utterances are recorded as far as they
were heard. The judgement looks at the speech that caused the interruption only — its words and
its length so far (`media.turns.interruption_is_false`) — so the caller's words are never dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from media.turns import interruption_is_false
from stores.turn_taking import TurnTaking
from voice_server.call.speaker import Interruption, Said, Speaker
from voice_server.call.supervision import Supervision
from voice_server.call.tasks import CallTasks
from voice_server.log import get_logger
from voice_server.metrics import BARGE_INS

log = get_logger(__name__)


class BargeIn:
    def __init__(
        self,
        turns: TurnTaking,
        speaker: Speaker,
        tasks: CallTasks,
        supervision: Supervision,
        follow: Callable[[Said | None], Awaitable[None]],
    ) -> None:
        """`follow` is what the session does after something said (ending the call after an
        answer that asked to); a resumed answer is followed the same way."""
        self._turns = turns
        self._speaker = speaker
        self._tasks = tasks
        self._supervision = supervision
        self._follow = follow
        self._interruption: Interruption | None = None

    @property
    def pending(self) -> bool:
        """The agent was cut off and the caller's words are not in yet."""
        return self._interruption is not None

    def speech_started(self, *, agent_speaking: bool) -> None:
        if self._turns.bargeIn and agent_speaking and self._interruption is None:
            self._tasks.spawn(self._interrupt(deliberate=False), "barge-in")

    def key_pressed(self, *, agent_speaking: bool) -> None:
        if self._turns.bargeIn and agent_speaking:
            self._tasks.spawn(self._interrupt(deliberate=True), "barge-in")

    def dismissed(self, text: str, speech_ms: float) -> bool:
        """Whether the caller's words (`text`, after `speech_ms` of speech) were no real
        interruption; if so the agent resumes and the words are not a turn."""
        if self._interruption is None or not interruption_is_false(
            text,
            speech_ms,
            acknowledgements=self._turns.acknowledgementPhrases,
            interruptions=self._turns.interruptPhrases,
            short_ms=self._turns.falseBargeInMaxMs,
        ):
            return False
        log.info("interruption was not meant: resuming", heard=text)
        self.resume()
        return True

    def settle(self) -> None:
        """The interruption was meant: what was cut stays cut."""
        interruption, self._interruption = self._interruption, None
        if interruption is not None:
            self._speaker.settle(interruption)

    def resume(self) -> None:
        """Carry on from where the caller stopped hearing the agent."""
        interruption, self._interruption = self._interruption, None
        if interruption is not None:
            self._tasks.respond(self._resume(interruption))

    async def _resume(self, interruption: Interruption) -> None:
        await self._follow(await self._speaker.resume(interruption))

    async def _interrupt(self, *, deliberate: bool) -> None:
        await self._tasks.stop_response()
        self._interruption = await self._speaker.interrupt()
        self._supervision.wake()
        BARGE_INS.inc()
        cut = len(self._interruption.cut)
        log.info("caller interrupted the agent", utterances=cut, deliberate=deliberate)
        if deliberate:
            self.settle()
