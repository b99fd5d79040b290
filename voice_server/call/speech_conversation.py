"""A speech-to-speech call's link to its model: the session, what it hears and says, and its
failures.

The caller's μ-law goes to the model untouched (`push_audio`); what the model says goes to the
agent's voice (`AgentVoice`), its transcript of the caller to the call's record. The model ends
the caller's turns and answers them itself; each turn's figures start at the caller's real end
of speech, which the model's VAD places in the audio it was given.

Barge-in: when the model hears the caller start speaking over the agent (and the agent may be
interrupted: `bargeIn`, and no goodbye is playing), Twilio's queue is cleared at once, the
response is cancelled, and the model's item is truncated at the audio the caller heard, so the
model, the record and the call log hold the same words. Nothing resumes: the model hears what
the caller said and answers it.

What was said outside the model (audio rendered ahead) is told to it as text once heard. A
failed session (dropped, refused, rate-limited, a server error) is answered with the fallback
rendered ahead and opened again, once, with the conversation so far as text; `run` returns
when the second one fails.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable

from media.codec import ulaw_duration_ms
from stores.agents import Agent
from voice_server.call.latency import TurnTimer
from voice_server.call.phrases import FALLBACK_TEXT
from voice_server.call.speaker import END_CALL, Transcript
from voice_server.call.speech_voice import AgentVoice
from voice_server.call.supervision import Supervision
from voice_server.call.transcript import new_entry
from voice_server.log import get_logger
from voice_server.providers.base import (
    AgentAudio,
    AgentText,
    CallerSpeech,
    CallerText,
    ChatMessage,
    ProviderError,
    ResponseDone,
    SpeechConversation,
    SpeechEvent,
    SpeechOptions,
    SpeechToSpeech,
)

log = get_logger(__name__)

HELD_MS = 5000.0  # longer than a session takes to open (its connect gives up after 3 s)


class ModelConversation:
    def __init__(
        self,
        speech: SpeechToSpeech,
        agent: Agent,
        voice: AgentVoice,
        *,
        transcript: Transcript,
        history: list[ChatMessage],
        supervision: Supervision,
    ) -> None:
        """`history` is the conversation as the call recorded it (`voice` records into it)."""
        self._speech = speech
        self._agent = agent
        self._voice = voice
        self._transcript = transcript
        self._supervision = supervision
        self._clock = supervision.clock
        self._history = history
        self._untold: list[ChatMessage] = []  # said outside the model, not yet told to it
        self._session: SpeechConversation | None = None
        self._pushed_ms = 0.0  # caller audio given to the session: the timeline of its VAD
        self._held: deque[bytes] = deque()  # caller audio while no session is open
        self._held_ms = self._dropped_ms = 0.0
        self._speech_start_ms = 0
        self.caller_spoke = False
        self.closing = False
        """A goodbye is playing (the session's say): the caller cannot interrupt it."""
        self.agent_ended = asyncio.Event()
        """The model called `end_call` and its answer has all been sent."""
        self._end_call = False

    def push_audio(self, ulaw: bytes) -> None:
        """The caller's audio, as Twilio sent it. While no session is open (it opens, or
        reopens after a failure) the last `HELD_MS` of it wait for the next one, so words said
        meanwhile (over the greeting, say) still reach the model."""
        if self._session is not None:
            self._session.push_audio(ulaw)
            self._pushed_ms += ulaw_duration_ms(len(ulaw))
            return
        self._held.append(ulaw)
        self._held_ms += ulaw_duration_ms(len(ulaw))
        while self._held_ms > HELD_MS:
            dropped_ms = ulaw_duration_ms(len(self._held.popleft()))
            self._held_ms -= dropped_ms
            self._dropped_ms += dropped_ms

    def _push_held(self, session: SpeechConversation) -> None:
        if self._dropped_ms:
            log.warning(
                "the model's session took long to open: its oldest caller audio was dropped",
                dropped_ms=round(self._dropped_ms),
            )
        for ulaw in self._held:
            session.push_audio(ulaw)
        self._pushed_ms += self._held_ms
        self._held.clear()
        self._held_ms = self._dropped_ms = 0.0

    async def speak_first(self, note: str) -> None:
        """Have the model speak first (a call we placed, whose callee stays silent), told
        `note` in place of the caller's words."""
        if self._session is not None:
            message = ChatMessage("user", note)
            self._history.append(message)
            await self._session.remember(message)
            await self._session.respond()

    async def tell_when_heard(self, number: int) -> None:
        """Once utterance `number` (said outside the model) is recorded, tell the model what
        the caller heard of it."""
        if heard := await self._voice.heard(number):
            self._untold.append(ChatMessage("assistant", heard))
            await self._tell()

    async def run(self, fallback: Awaitable[bytes | None] | None) -> None:
        """Talk through the model until its session has failed twice (the first failure is
        answered with `fallback`, rendered ahead)."""
        async with asyncio.TaskGroup() as telling:
            for attempt in range(2):
                options = self._options()
                # What the last session said and is still playing is told once heard.
                for number in self._voice.unrecorded_model_items() if attempt else ():
                    telling.create_task(self.tell_when_heard(number))
                try:
                    async with self._speech.open_session(options) as session:
                        await self._converse(session)
                except ProviderError as error:
                    log.error("speech-to-speech session failed", error=str(error), try_=attempt)
                    await self._voice.response_done()  # what came of the answer plays on
                    audio = await fallback if fallback is not None else None
                    if attempt == 0 and not self.closing and audio:
                        said = await self._voice.play(FALLBACK_TEXT, audio, str(error))
                        telling.create_task(self.tell_when_heard(said))

    async def _converse(self, session: SpeechConversation) -> None:
        self._pushed_ms = 0.0  # a new session's audio timeline
        self._push_held(session)
        self._session = session
        try:
            await self._tell()
            async for event in session.events():
                await self._on_event(event)
        finally:
            self._session = None

    def _options(self) -> SpeechOptions:
        agent, turns = self._agent, self._agent.turnTaking
        history, self._untold = tuple(self._history), []  # told as the session opens
        return SpeechOptions(
            model=agent.inferenceModel,
            instructions=agent.systemPrompt,
            voice=agent.ttsVoice,
            transcription_model=agent.sttModel,
            max_output_tokens=agent.maxTokens,
            turn_detection=turns.turnDetection,
            eagerness=turns.eagerness,
            end_silence_ms=turns.endSilenceMs,
            tools=(END_CALL,),
            history=history,
        )

    async def _tell(self) -> None:
        while self._session is not None and self._untold:
            await self._session.remember(self._untold.pop(0))

    async def _on_event(self, event: SpeechEvent) -> None:
        if isinstance(event, AgentAudio):
            self._supervision.wake()
            await self._voice.audio(event.item_id, event.ulaw)
        elif isinstance(event, AgentText):
            self._voice.text(event.item_id, event.delta)
        elif isinstance(event, CallerSpeech):
            await self._on_caller_speech(event)
        elif isinstance(event, CallerText):
            self._on_caller_text(event.text)
        elif isinstance(event, ResponseDone):
            await self._voice.response_done(event.input_tokens, event.output_tokens)
            if self._end_call:
                self.agent_ended.set()
        elif event.name == END_CALL.name:
            log.info("the agent ended the call")
            self._end_call = self.closing = True

    async def _on_caller_speech(self, event: CallerSpeech) -> None:
        self.caller_spoke = True
        rules, now = self._supervision.rules, self._clock()
        self._supervision.wake()
        if event.started:
            rules.caller_speaking()
            self._speech_start_ms = event.audio_ms
            if self._agent.turnTaking.bargeIn and not self.closing:
                await self._barge_in()
            return
        rules.agent_idle(now)  # silence is timed from here until the model answers
        # The caller's real end of speech: where the model's VAD put it in the audio pushed.
        ended = now - max(0.0, self._pushed_ms - event.audio_ms) / 1000
        audio_in_s = (event.audio_ms - self._speech_start_ms) / 1000
        self._voice.answering(TurnTimer(last_speech=ended, endpoint=now), audio_in_s)

    async def _barge_in(self) -> None:
        """Stop the agent at once; the model forgets what the caller did not hear."""
        cut = await self._voice.interrupt() if self._voice.speaking else None
        if self._session is None:
            return
        if cut is None:
            await self._session.cut(None, 0)  # an answer on its way, not heard yet
        else:
            log.info("caller interrupted the agent", heard_ms=cut.heard_ms)
            await self._session.cut(cut.item_id, cut.heard_ms)

    def _on_caller_text(self, text: str) -> None:
        if not text:
            log.info("caller spoke but no words were recognised")
            return
        self._transcript.add(new_entry("user", text))
        self._history.append(ChatMessage("user", text))
