"""The agent's voice in one call: the response being spoken, and what the caller heard of it.

Owns the current response task (at most one), the mark ledger (through `Outbound`) and the
record of each utterance. An utterance is written to the transcript, and to the conversation the
LLM sees, once: whole when its last mark has played, or cut to what was heard when the caller
interrupted or hung up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from media.playout import Chunk
from stores.calls import TranscriptEntry
from voice_server.call.outbound import Outbound
from voice_server.call.response import Responder, Utterance, Voice
from voice_server.call.transcript import TranscriptWriter
from voice_server.providers.base import ChatMessage, TextToSpeech

Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


class AgentVoice:
    def __init__(
        self,
        *,
        send_text: Callable[[str], Awaitable[None]],
        stream_sid: str,
        tts: TextToSpeech,
        voice: Voice,
        transcript: TranscriptWriter,
        history: list[ChatMessage],
        on_progress: Callable[[], None],
    ) -> None:
        self.outbound = Outbound(send_text, stream_sid, on_progress)
        self.responder = Responder(self.outbound, tts, voice, on_progress)
        self._transcript = transcript
        self._history = history
        self._utterances: dict[int, Utterance] = {}
        self._response: asyncio.Task[None] | None = None
        self._played = asyncio.Event()

    @property
    def speaking(self) -> bool:
        """A response is running, or audio it sent has not finished playing."""
        running = self._response is not None and not self._response.done()
        return running or not self.outbound.playout.idle

    def new_utterance(self, continues: Utterance | None = None) -> Utterance:
        """A new utterance; one that `continues` an interrupted one starts with what was heard."""
        utterance = Utterance(number=len(self._utterances) + 1)
        if continues is not None:
            heard = self.heard(continues)
            utterance.text, utterance.floor = heard, len(heard)
            utterance.metrics, utterance.error = continues.metrics, continues.error
            continues.recorded = True  # superseded by its continuation
        self._utterances[utterance.number] = utterance
        return utterance

    def start(self, spawn: Spawn, work: Coroutine[Any, Any, None], *, replace: bool = True) -> None:
        """Run `work` as the response: after cancelling the current one (`replace`), or after
        it has finished (a queued answer, when the agent may not be interrupted)."""
        self._response = spawn(self._after(self._response, work, replace), "response")

    async def _after(
        self, previous: asyncio.Task[None] | None, work: Coroutine[Any, Any, None], replace: bool
    ) -> None:
        if previous is not None and not previous.done():
            if replace:
                previous.cancel()
            with suppress(asyncio.CancelledError):
                await previous
        await work

    async def stop(self) -> None:
        """Cancel the response in progress (closing its LLM and TTS streams)."""
        if self._response is not None and not self._response.done():
            self._response.cancel()
            with suppress(asyncio.CancelledError):
                await self._response

    async def interrupt(self) -> list[Utterance]:
        """Stop speaking at once: cancel the response, clear Twilio's queue. Returns the
        utterances that were cut off (not yet recorded)."""
        await self.stop()
        await self.outbound.clear()
        return [u for u in self._utterances.values() if not u.recorded]

    def on_echo(self, name: str) -> None:
        """A mark came back from Twilio."""
        chunk: Chunk | None = self.outbound.echoed(name)
        if chunk is None:
            return
        utterance = self._utterances.get(chunk.utterance)
        if utterance is not None:
            utterance.last_heard = name
            self.record_if_played(utterance)

    def record_if_played(self, utterance: Utterance) -> None:
        if utterance.sent_all and self.outbound.playout.last_played(utterance.number):
            self.record(utterance)
            self._played.set()

    async def played(self, utterance: Utterance) -> None:
        """Wait until `utterance` has been recorded (played to the end, or cut off)."""
        while not utterance.recorded:
            self._played.clear()
            await self._played.wait()

    def heard(self, utterance: Utterance) -> str:
        playout = self.outbound.playout
        if utterance.sent_all and playout.last_played(utterance.number):
            return utterance.text
        return utterance.heard_text(playout.heard_text_end(utterance.number))

    def record(self, utterance: Utterance, *, interrupted: bool = False) -> None:
        """Store what the caller heard of `utterance`, once."""
        if utterance.recorded:
            return
        utterance.recorded = True
        self._played.set()
        complete = utterance.sent_all and self.outbound.playout.last_played(utterance.number)
        heard = self.heard(utterance)
        if not heard and utterance.error is None:
            return
        cut = interrupted or not complete
        self._history.append(ChatMessage("assistant", heard + (" —" if cut else "")))
        if cut:
            self._history.append(
                ChatMessage("system", "The caller interrupted you there and did not hear the rest.")
            )
        entry = {
            "role": "assistant",
            "text": heard,
            "timestamp": datetime.now(UTC),
            "interrupted": True if cut else None,
            "metrics": utterance.metrics or None,
            "error": utterance.error,
        }
        self._transcript.add(TranscriptEntry.model_validate(entry))

    def record_all(self) -> None:
        for utterance in self._utterances.values():
            self.record(utterance)
