"""The agent's voice on a speech-to-speech call: each item's audio out, and what was heard of it.

A speech-to-speech model sends its answer as audio already in μ-law, faster than real time; it
goes to Twilio as it comes, in whole 20 ms frames, a `mark` after each piece (Twilio queues it
and plays it in real time, so the reader of the model's events never waits on playback; a
barge-in's `clear` drops the queue). Audio rendered ahead (the greeting, the fallback, a
goodbye) goes out the same way. Each piece of audio is one `Utterance` with the usual life
(`voice_server.call.utterance`): rendering while its audio comes, playing once all of it was
sent, heard when its last mark echoed, cut by an interruption, then recorded once.

What was heard comes from the marks Twilio echoed (`media.playout`): whole pieces, in ms. That
is the `audio_end_ms` the model's item is truncated at, and the share of its transcript kept
in the call's record and conversation (cut back to a whole word).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from media.codec import ulaw_duration_ms
from media.framing import Framer
from media.playout import word_cut
from voice_server.call.latency import TurnTimer
from voice_server.call.outbound import CHUNK_BYTES, Outbound
from voice_server.call.speaker import Transcript
from voice_server.call.transcript import new_entry
from voice_server.call.utterance import UNFINISHED, Utterance, UtteranceState
from voice_server.providers.base import ChatMessage

_State = UtteranceState


@dataclass(eq=False)
class _Item:
    """One utterance's audio: a model item's (`item_id`) or audio rendered ahead (None)."""

    utterance: Utterance
    item_id: str | None
    timer: TurnTimer | None = None
    received_ms: float = 0.0  # audio that came for it, whole or still in the framer
    framer: Framer = field(default_factory=Framer)
    figures: dict[str, float] = field(default_factory=dict)
    heard: str = ""  # what was recorded of it


@dataclass(frozen=True, slots=True)
class Cut:
    """What an interruption cut of the model's latest item: truncate it at `heard_ms`."""

    item_id: str
    heard_ms: int


class AgentVoice:
    def __init__(
        self, outbound: Outbound, transcript: Transcript, history: list[ChatMessage]
    ) -> None:
        self._outbound = outbound
        self._transcript = transcript
        self._history = history
        self._items: dict[int, _Item] = {}
        self._by_id: dict[str, _Item] = {}
        self._timer: TurnTimer | None = None  # the turn the next model item answers
        self._figures: dict[str, float] = {}
        self._recorded = asyncio.Event()
        self._clock = asyncio.get_running_loop().time

    @property
    def speaking(self) -> bool:
        """Audio was sent that has not played, or a model item is still coming."""
        return not self._outbound.playout.idle or any(
            i.utterance.state is _State.RENDERING for i in self._items.values()
        )

    @property
    def progress_at(self) -> float:
        """Loop time of the latest audio sent or mark echoed."""
        return self._outbound.progress_at

    @property
    def outstanding_ms(self) -> float:
        """Audio sent that has not played yet."""
        return self._outbound.playout.outstanding_ms()

    def answering(self, timer: TurnTimer, audio_in_s: float) -> None:
        """The caller's turn ended (`timer`): the model's next item answers it."""
        self._timer = timer
        self._figures = {"audio_in_s": round(audio_in_s, 3)}

    async def audio(self, item_id: str, ulaw: bytes) -> None:
        """More of the model's item `item_id`; dropped once the item was cut."""
        item = self._model_item(item_id)
        if item.utterance.state is not _State.RENDERING:
            return
        timer, now = item.timer, self._clock()
        if timer is not None and not timer.model_first_audio:
            timer.model_first_audio = now
        item.received_ms += ulaw_duration_ms(len(ulaw))
        await self._send(item, b"".join(item.framer.push(ulaw)))
        if timer is not None and not timer.first_audio and item.utterance.spoken.marked:
            timer.first_audio = self._clock()

    def text(self, item_id: str, delta: str) -> None:
        self._model_item(item_id).utterance.planned += delta

    async def response_done(self, input_tokens: int = 0, output_tokens: int = 0) -> None:
        """The model's response ended: what is left of its items goes out, and each plays on."""
        tokens = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens}
        for item in list(self._items.values()):
            if item.item_id is not None and item.utterance.state is _State.RENDERING:
                item.figures.update(tokens if input_tokens or output_tokens else {})
                await self._send(item, item.framer.flush() or b"")
                self._sent(item)

    async def play(self, text: str, ulaw: bytes, error: str | None = None) -> int:
        """Play audio rendered ahead, saying `text`; the utterance's number."""
        item = self._new(None)
        item.utterance.planned, item.utterance.error = text, error
        item.received_ms = ulaw_duration_ms(len(ulaw))
        await self._send(item, ulaw)
        self._sent(item)
        return item.utterance.number

    def on_mark(self, name: str) -> None:
        chunk = self._outbound.echoed(name)
        if chunk is not None and (item := self._items.get(chunk.utterance)) is not None:
            self._check_heard(item)

    async def interrupt(self) -> Cut | None:
        """Stop playback at once (Twilio's queue is cleared), record what was cut as far as it
        was heard, and say where the model's latest cut item stops."""
        await self._outbound.clear()
        cut: Cut | None = None
        for item in self._items.values():
            if item.utterance.state in UNFINISHED:
                item.utterance.move(_State.CUT)
                if item.item_id is not None:
                    cut = Cut(item.item_id, int(self._heard_ms(item)))
                self._record(item)
        return cut

    async def finished(self, number: int | None = None) -> None:
        """Wait until utterance `number` (by default every one so far) has been recorded."""
        while any(
            item.utterance.state is not _State.RECORDED
            for n, item in self._items.items()
            if number is None or n == number
        ):
            self._recorded.clear()
            await self._recorded.wait()

    def unrecorded_model_items(self) -> list[int]:
        """The model's utterances not recorded yet (still playing, or coming)."""
        return [
            number
            for number, item in self._items.items()
            if item.item_id is not None and item.utterance.state is not _State.RECORDED
        ]

    async def heard(self, number: int) -> str:
        """What the caller heard of utterance `number`, once it has been recorded."""
        await self.finished(number)
        return self._items[number].heard

    def close(self) -> None:
        """The call is over: record every utterance not recorded yet, as far as it was heard."""
        for item in self._items.values():
            self._record(item)

    def _model_item(self, item_id: str) -> _Item:
        if (item := self._by_id.get(item_id)) is None:
            item = self._by_id[item_id] = self._new(item_id)
            item.timer, self._timer = self._timer, None
            item.figures, self._figures = self._figures, {}
        return item

    def _new(self, item_id: str | None) -> _Item:
        number = len(self._items) + 1
        item = self._items[number] = _Item(Utterance(number), item_id)
        item.utterance.move(_State.RENDERING)
        return item

    async def _send(self, item: _Item, ulaw: bytes) -> None:
        number = item.utterance.number
        for offset in range(0, len(ulaw), CHUNK_BYTES):
            chunk = ulaw[offset : offset + CHUNK_BYTES]
            name = await self._outbound.send_chunk(number, chunk, 0)
            item.utterance.spoken.chunk_sent(name, ulaw_duration_ms(len(chunk)))

    def _sent(self, item: _Item) -> None:
        item.utterance.move(_State.PLAYING)
        self._check_heard(item)

    def _check_heard(self, item: _Item) -> None:
        utterance = item.utterance
        if utterance.state is not _State.PLAYING:
            return
        if not utterance.spoken.marked or self._outbound.playout.last_played(utterance.number):
            utterance.move(_State.HEARD)
            self._record(item)

    def _heard_ms(self, item: _Item) -> float:
        """Audio of the item heard, from the marks; the padding of its last frame is not its."""
        return min(self._outbound.playout.heard_ms(item.utterance.number), item.received_ms)

    def _record(self, item: _Item) -> None:
        """Store what the caller heard of the item, once."""
        utterance = item.utterance
        if utterance.state is _State.RECORDED:
            return
        if utterance.state in UNFINISHED:
            utterance.move(_State.CUT)
        text = utterance.planned.strip()
        cut = utterance.state is _State.CUT
        if cut and item.received_ms:
            text = text[: word_cut(text, 0, len(text), self._heard_ms(item) / item.received_ms)]
        utterance.move(_State.RECORDED)
        self._recorded.set()
        item.heard = text = text.strip()
        if not text and utterance.error is None:
            return
        self._history.append(ChatMessage("assistant", text))
        metrics = {**(item.timer.metrics() if item.timer else {}), **item.figures}
        if item.item_id is not None:
            metrics["audio_out_s"] = round(item.received_ms / 1000, 3)
        self._transcript.add(
            new_entry(
                "assistant",
                text,
                interrupted=True if cut else None,
                metrics=metrics or None,
                error=utterance.error,
            )
        )
