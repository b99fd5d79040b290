"""The mark ledger: what audio was sent, what the caller heard, and what a clear cut.

`Playout` is the stream's ledger of chunks and their marks; `SpokenText` turns the marks of one
utterance into the text the caller heard.

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

    __slots__ = (
        "_cancelled",
        "_counter",
        "_cut_utterances",
        "_heard",
        "_heard_ms",
        "_outstanding",
        "_outstanding_ms",
    )

    def __init__(self) -> None:
        self._counter = 0
        self._outstanding: dict[str, Chunk] = {}  # in send order (= Twilio's playback order)
        self._outstanding_ms = 0.0  # their audio, kept as they come and go: read every chunk
        self._cancelled: set[str] = set()
        self._heard: dict[int, int] = {}  # utterance → max text_end of its played chunks
        self._heard_ms: dict[int, float] = {}  # utterance → audio of its played chunks
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
        self._outstanding_ms += chunk.audio_ms

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
            self._outstanding_ms = self._outstanding_ms - chunk.audio_ms if outstanding else 0.0
            self._played(chunk)
            if chunk.name == name:
                return chunk

    def _played(self, chunk: Chunk) -> None:
        heard = self._heard.get(chunk.utterance, 0)
        self._heard[chunk.utterance] = max(heard, chunk.text_end)
        self._heard_ms[chunk.utterance] = self._heard_ms.get(chunk.utterance, 0.0) + chunk.audio_ms

    def clear(self) -> list[Chunk]:
        """A `clear` was just sent: every outstanding chunk is cancelled and returned."""
        cut = list(self._outstanding.values())
        self._cancelled.update(self._outstanding)
        self._cut_utterances.update(chunk.utterance for chunk in cut)
        self._outstanding.clear()
        self._outstanding_ms = 0.0
        return cut

    def heard_text_end(self, utterance: int) -> int:
        """How much of the utterance's text has played (0 if nothing has)."""
        return self._heard.get(utterance, 0)

    def heard_ms(self, utterance: int) -> float:
        """How much of the utterance's audio has played, ms (whole chunks, from the marks)."""
        return self._heard_ms.get(utterance, 0.0)

    def outstanding_ms(self) -> float:
        """Audio sent but not yet echoed: how far sending leads playback."""
        return self._outstanding_ms

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


def word_cut(text: str, start: int, end: int, share: float) -> int:
    """Where the caller stopped hearing `text[start:end]` once `share` (0–1) of its audio has
    played: that far into it, cut back to the last whole word (never before `start`)."""
    estimate = start + int((end - start) * min(1.0, share))
    if estimate < end:
        estimate = max(start, text.rfind(" ", 0, estimate + 1))
    return estimate


@dataclass(frozen=True, slots=True)
class _Spot:
    """Where a mark falls in its utterance: its sentence, and the sentence's audio up to it."""

    sentence_start: int
    sentence_end: int
    audio_ms: float


class SpokenText:
    """One utterance's text as it is sent, sentence by sentence, and where each mark falls in it.

    Whole sentences are heard once their last mark plays (`Playout.heard_text_end`). Within the
    sentence playing when playback stopped, the heard part is estimated from the share of that
    sentence's audio that played, cut back to a whole word.
    """

    __slots__ = (
        "_last_played",
        "_sentence_ms",
        "_spots",
        "_start",
        "_start_audio_ms",
        "floor",
        "text",
    )

    def __init__(self, heard_before: str = "") -> None:
        self.text = heard_before
        self.floor = len(heard_before)
        """Text heard before this utterance began (a resumed utterance's first part)."""
        self._spots: dict[str, _Spot] = {}
        self._sentence_ms: dict[int, float] = {}  # sentence start → its whole audio
        self._start = 0
        self._start_audio_ms = 0.0
        self._last_played: str | None = None

    def add_sentence(self, sentence: str) -> int:
        """Append the sentence about to be sent; returns where it starts in `text`."""
        self._start = len(self.text) + (1 if self.text else 0)
        self.text = f"{self.text} {sentence}" if self.text else sentence
        self._start_audio_ms = 0.0
        return self._start

    def chunk_sent(self, mark: str, audio_ms: float) -> None:
        """`audio_ms` more of the latest sentence went out, followed by `mark`."""
        self._start_audio_ms += audio_ms
        self._spots[mark] = _Spot(self._start, len(self.text), self._start_audio_ms)

    def sentence_sent(self, mark: str) -> None:
        """The latest sentence is all sent; `mark` follows it."""
        self._sentence_ms[self._start] = self._start_audio_ms
        self._spots[mark] = _Spot(self._start, len(self.text), self._start_audio_ms)

    @property
    def marked(self) -> bool:
        """Whether any mark was sent for this utterance."""
        return bool(self._spots)

    def played(self, mark: str) -> None:
        """`mark` of this utterance really played (echoed, not cancelled by a clear)."""
        if mark in self._spots:
            self._last_played = mark

    def heard(self, whole_sentences_end: int, *, complete: bool = False) -> str:
        """The text the caller heard, given how far whole sentences were heard; all of it when
        the utterance played to its end (`complete`)."""
        if complete:
            return self.text.strip()
        end = max(self.floor, whole_sentences_end)
        spot = self._spots.get(self._last_played) if self._last_played else None
        total = self._sentence_ms.get(spot.sentence_start) if spot else None
        if spot is not None and total:
            share = spot.audio_ms / total
            end = max(end, word_cut(self.text, spot.sentence_start, spot.sentence_end, share))
        return self.text[:end].strip()
