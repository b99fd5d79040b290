"""The mark ledger: what audio was sent, what the caller heard, and what a clear cut.

Twilio plays outbound audio in order and echoes a `mark` once all audio queued before it has
played; a `clear` drops the queue and makes Twilio echo every pending mark at once, and those
echoes look exactly like played ones (twilio.md "Buffering, pacing and marks"; vellum-ai
#38316). So every sent mark is recorded here, a clear moves the outstanding ones into a
cancelled set, and only echoes of non-cancelled marks advance what was heard.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chunk:
    """One run of outbound audio followed by its mark."""

    name: str
    """The mark's name, unique per stream."""
    utterance: int
    text_end: int
    """Characters of the utterance's text the caller has heard once this chunk has played."""
    audio_ms: float


class Playout:
    """Per-stream ledger of sent, played and cancelled chunks."""

    __slots__ = ("_cancelled", "_counter", "_cut_utterances", "_heard", "_outstanding")

    def __init__(self) -> None:
        self._counter = 0
        self._outstanding: dict[str, Chunk] = {}  # in send order (= Twilio's playback order)
        self._cancelled: set[str] = set()
        self._heard: dict[int, int] = {}  # utterance → max text_end of its played chunks
        self._cut_utterances: set[int] = set()  # utterances with a chunk cancelled by a clear

    def next_mark_name(self, utterance: int) -> str:
        """A fresh mark name such as "u3-c7"; the counter runs across utterances."""
        self._counter += 1
        return f"u{utterance}-c{self._counter}"

    def sent(self, chunk: Chunk) -> None:
        """Record a chunk whose audio and then mark were just sent."""
        if chunk.name in self._outstanding or chunk.name in self._cancelled:
            raise ValueError(f"mark name {chunk.name!r} is already in use")
        self._outstanding[chunk.name] = chunk

    def echoed(self, name: str) -> Chunk | None:
        """Handle a mark echo from Twilio.

        Returns the chunk if it counts as played; earlier outstanding chunks are then played
        too, since Twilio plays in order. Returns None for the echo of a cancelled or unknown mark.
        """
        if name in self._cancelled:
            self._cancelled.discard(name)
            return None
        if name not in self._outstanding:
            return None
        outstanding = self._outstanding
        while True:
            chunk = outstanding.pop(next(iter(outstanding)))
            self._played(chunk)
            if chunk.name == name:
                return chunk

    def _played(self, chunk: Chunk) -> None:
        heard = self._heard.get(chunk.utterance, 0)
        self._heard[chunk.utterance] = max(heard, chunk.text_end)

    def clear(self) -> list[Chunk]:
        """A `clear` was just sent: every outstanding chunk is cancelled and returned."""
        cut = list(self._outstanding.values())
        self._cancelled.update(self._outstanding)
        self._cut_utterances.update(chunk.utterance for chunk in cut)
        self._outstanding.clear()
        return cut

    def heard_text_end(self, utterance: int) -> int:
        """How much of the utterance's text has played (0 if nothing has)."""
        return self._heard.get(utterance, 0)

    def outstanding_ms(self) -> float:
        """Audio sent but not yet echoed: how far sending leads playback."""
        return sum(chunk.audio_ms for chunk in self._outstanding.values())

    @property
    def idle(self) -> bool:
        """Nothing is waiting to play."""
        return not self._outstanding

    def last_played(self, utterance: int) -> bool:
        """Whether every chunk sent for `utterance` has played (and at least one has).

        False once a clear cut any of its chunks: the caller did not hear it all.
        """
        if utterance not in self._heard or utterance in self._cut_utterances:
            return False
        return all(chunk.utterance != utterance for chunk in self._outstanding.values())
