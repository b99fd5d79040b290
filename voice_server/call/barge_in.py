"""What happens when the caller talks over the agent.

A sound over the agent (once it lasts `minSpeechMs`) is first checked by a second detector that
tells speech from coughs and noise (`media.onset_check`); the agent goes on over anything that
is not speech, with no gap. Speech, or a key press, cancels the response (its LLM and TTS
streams closed) and clears Twilio's queue at once, so the agent stops within a frame or two.
Words heard from a sound that was never confirmed as speech are judged like an interruption's:
only a sentence is a turn. What was cut is held as an `Interruption` until the caller's words
come in: noise, a cough or a backchannel ("mm-hm") was not meant to interrupt, and the agent
resumes where the caller stopped hearing it (an answer of which nothing was heard is asked for
again); real words (or a key press) settle it, and the cut utterances are recorded as far as they
were heard. The judgement looks at the speech that caused the interruption only — its words and
its length so far (`media.turns.interruption_is_false`) — so the caller's words are never dropped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from media.onset_check import OnsetCheck
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
        *,
        follow: Callable[[Said | None], Awaitable[None]],
        interruptible: Callable[[], bool],
    ) -> None:
        """`follow` is what the session does after something said (ending the call after an
        answer that asked to); a resumed answer is followed the same way. `interruptible` says
        whether the agent is saying something the caller may cut short (asked only when a
        sound or a key would interrupt it, never per frame)."""
        self._turns = turns
        self._speaker = speaker
        self._tasks = tasks
        self._supervision = supervision
        self._follow = follow
        self._interruptible = interruptible
        self._interruption: Interruption | None = None
        self._onset = OnsetCheck()
        self._unconfirmed = False  # a sound over the agent not (yet) confirmed as speech

    @property
    def pending(self) -> bool:
        """The agent was cut off and the caller's words are not in yet."""
        return self._interruption is not None

    def heard(self, pcm16: bytes) -> None:
        """Every frame of the caller's audio (8 kHz PCM16)."""
        if self._onset.hear(pcm16) and self._interruption is None and self._interruptible():
            self._interrupt_soon(deliberate=False)

    def speech_started(self, onset_ms: float) -> None:
        """The caller's sound has lasted `minSpeechMs` (`onset_ms` since it began)."""
        self._unconfirmed = False  # a recogniser may never have finished an earlier sound
        if self._turns.bargeIn and self._interruption is None and self._interruptible():
            self._unconfirmed = True
            if self._onset.begin(onset_ms):
                self._interrupt_soon(deliberate=False)

    def speech_ended(self) -> None:
        if self._onset.checking:
            self._onset.end()
            log.info("a sound over the agent was not speech: the agent went on")

    def key_pressed(self) -> None:
        if self._turns.bargeIn and self._interruptible():
            self._interrupt_soon(deliberate=True)

    def dismissed(self, text: str, speech_ms: float) -> bool:
        """Whether the caller's words (`text`, after `speech_ms` of speech) were no real
        interruption; if so they are not a turn, and the agent resumes if it was cut off."""
        unconfirmed, self._unconfirmed = self._unconfirmed, False
        if self._interruption is None and not (unconfirmed and text):
            return False
        if not interruption_is_false(
            text,
            speech_ms,
            acknowledgements=self._turns.acknowledgementPhrases,
            interruptions=self._turns.interruptPhrases,
            short_ms=self._turns.falseBargeInMaxMs,
        ):
            return False
        if self._interruption is None:
            log.info("words over the agent were not meant for it: ignored", heard=text)
            return True
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

    def _interrupt_soon(self, *, deliberate: bool) -> None:
        self._onset.end()
        self._unconfirmed = False
        self._tasks.spawn(self._interrupt(deliberate=deliberate), "barge-in")

    async def _interrupt(self, *, deliberate: bool) -> None:
        await self._tasks.stop_response()
        self._interruption = await self._speaker.interrupt()
        self._supervision.wake()
        BARGE_INS.inc()
        cut = len(self._interruption.cut)
        log.info("caller interrupted the agent", utterances=cut, deliberate=deliberate)
        if deliberate:
            self.settle()
