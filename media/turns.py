"""Endpointing: a run of per-frame speech decisions → "speech started" / "speech ended".

A simple two-threshold state machine (a later change deepens turn-taking and barge-in):
speech starts once `min_speech_ms` of speech frames accumulated, tolerating short gaps of at
most `onset_gap_ms` during the onset (hysteresis against clicks and noise); speech ends after
`end_silence_ms` of continuous non-speech. Time is passed in as `now`, seconds, never read.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from media.codec import FRAME_MS

_FRAME_S = FRAME_MS / 1000
_EPSILON_S = 1e-6  # float slack when comparing accumulated 20 ms steps against thresholds


@dataclass(frozen=True, slots=True)
class EndpointingOptions:
    min_speech_ms: float = 100.0
    """Speech needed before `SpeechStarted` (guards against clicks and short noises)."""
    end_silence_ms: float = 600.0
    """Continuous non-speech that ends a run of speech."""
    onset_gap_ms: float = 60.0
    """Longest non-speech gap tolerated while speech is still accumulating."""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at: float
    """Start time of the first speech frame of the run, seconds."""


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    started_at: float
    last_speech_at: float
    """End time of the last speech frame, seconds."""


class EndpointState(enum.Enum):
    SILENCE = "silence"
    ONSET = "onset"
    """Speech frames seen, but fewer than `min_speech_ms`."""
    SPEECH = "speech"


class Endpointer:
    """Feed one decision per 20 ms frame; get an event when speech starts or ends."""

    __slots__ = (
        "_last_speech_at",
        "_options",
        "_run",
        "_speech_ms",
        "_started_at",
        "_state",
    )

    def __init__(self, options: EndpointingOptions) -> None:
        self._options = options
        self._last_speech_at = 0.0
        self.reset()

    def reset(self) -> None:
        """Forget any speech in progress, without emitting an event."""
        self._state = EndpointState.SILENCE
        self._started_at = 0.0
        self._speech_ms = 0
        self._run = (0.0, 0.0)  # first and last speech frame of the latest run of speech

    @property
    def speech_ms(self) -> float:
        """How long the latest run of speech lasted, from its first to its last speech frame so
        far: the one going on, else the last one that ended (0 before any). An interruption is
        judged on this, whether or not the run has ended yet."""
        started, last = self._run
        return (last - started) * 1000

    @property
    def last_speech_at(self) -> float:
        """End time of the latest speech frame (0 before any), seconds."""
        return self._last_speech_at

    @property
    def state(self) -> EndpointState:
        return self._state

    @property
    def in_speech(self) -> bool:
        return self._state is EndpointState.SPEECH

    def _move(self, expected: EndpointState, new: EndpointState) -> None:
        if self._state is not expected:
            raise RuntimeError(f"endpointer: expected {expected.name}, got {self._state.name}")
        self._state = new

    def process(self, is_speech: bool, now: float) -> SpeechStarted | SpeechEnded | None:
        """Take the decision for the 20 ms frame ending at `now` (seconds)."""
        state = self._state
        if state is EndpointState.SPEECH:
            return self._in_speech(is_speech, now)
        if state is EndpointState.ONSET:
            return self._in_onset(is_speech, now)
        if is_speech:
            self._move(EndpointState.SILENCE, EndpointState.ONSET)
            self._started_at = now - _FRAME_S
            self._speech_ms = 0
            return self._in_onset(True, now)
        return None

    def _in_onset(self, is_speech: bool, now: float) -> SpeechStarted | None:
        if not is_speech:
            if now - self._last_speech_at > self._options.onset_gap_ms / 1000 + _EPSILON_S:
                self._move(EndpointState.ONSET, EndpointState.SILENCE)
            return None
        self._speech_ms += FRAME_MS
        self._last_speech_at = now
        if self._speech_ms + _EPSILON_S < self._options.min_speech_ms:
            return None
        self._move(EndpointState.ONSET, EndpointState.SPEECH)
        self._run = (self._started_at, now)
        return SpeechStarted(at=self._started_at)

    def _in_speech(self, is_speech: bool, now: float) -> SpeechEnded | None:
        if is_speech:
            self._last_speech_at = now
            self._run = (self._started_at, now)
            return None
        if now - self._last_speech_at + _EPSILON_S < self._options.end_silence_ms / 1000:
            return None
        self._move(EndpointState.SPEECH, EndpointState.SILENCE)
        return SpeechEnded(started_at=self._started_at, last_speech_at=self._last_speech_at)


def _words(text: str) -> str:
    return " ".join("".join(c if c.isalnum() or c in "'-" else " " for c in text.lower()).split())


def interruption_is_false(
    text: str,
    speech_ms: float,
    *,
    acknowledgements: Sequence[str],
    interruptions: Sequence[str],
    short_ms: float,
) -> bool:
    """Whether caller speech that cut the agent off was not meant to, judged on that speech
    alone (`text`, and `speech_ms` of it). The rule, in order:

    - an interrupting word or phrase ("stop", "wait") anywhere: meant;
    - no words, or only acknowledgements ("mm-hm", "yeah"): not meant;
    - two or more other words: meant, however short the speech (words are a sentence, never
      noise);
    - one other word: meant unless the speech was shorter than `short_ms` (a cough or a click
      the recogniser heard as a word).
    """
    said = _words(text)
    if not said:
        return True
    if any(f" {_words(p)} " in f" {said} " for p in interruptions if _words(p)):
        return False
    rest = f" {said} "
    for phrase in sorted(filter(None, map(_words, acknowledgements)), key=len, reverse=True):
        while f" {phrase} " in rest:
            rest = rest.replace(f" {phrase} ", " ")
    other = rest.split()
    return not other or (len(other) == 1 and speech_ms < short_ms)


# Words after which a sentence goes on. Even before a full stop (some recognisers put one at
# every pause): conjunctions, fillers, articles and possessives.
ALWAYS_CONTINUING = frozenset((
    "and", "or", "but", "because", "although", "unless", "whether", "um", "uh", "er", "erm",
    "the", "a", "an", "my", "your", "our", "their",
))  # fmt: skip
# Without punctuation, also: more conjunctions, prepositions and subject pronouns.
CONTINUING_WORDS = ALWAYS_CONTINUING | frozenset((
    "so", "since", "though", "until", "while", "if", "when", "that", "which", "who", "whose",
    "than", "then", "like", "to", "of", "for", "with", "from", "at", "in", "on", "into",
    "about", "by", "as", "i", "we", "they", "he", "she", "i'm", "i'd", "i'll", "we're",
))  # fmt: skip
_SENTENCE_ENDS = (".", "!", "?")
_PAUSE_MARKS = (",", ";", ":", "-", "—", "…")


class TurnEnd(enum.Enum):
    """How a final transcript ends, for how long the caller's silence must last before the
    agent answers it."""

    QUESTION = "question"  # a question: answer as soon as the caller has paused briefly
    SENTENCE = "sentence"  # the usual end-of-turn silence
    UNFINISHED = "unfinished"  # the sentence goes on after the pause: wait longer


def turn_end(text: str, *, punctuated: bool) -> TurnEnd:
    """Read how the caller's words end. Unfinished: a trailing comma, dash or ellipsis; a last
    word that never ends a sentence ("and", "because", "um", "the"); with no full stop,
    question or exclamation mark, a last word that seldom does ("to", "with", "if"), or any
    word at all from a recogniser that punctuates (`punctuated`). A question ends with a
    question mark. Anything else (also no words) is a sentence."""
    stripped = text.rstrip()
    words = _words(stripped).split()
    if not words:
        return TurnEnd.SENTENCE
    last = words[-1]
    if stripped.endswith(_PAUSE_MARKS) or stripped.endswith("..") or last in ALWAYS_CONTINUING:
        return TurnEnd.UNFINISHED
    if stripped.endswith("?"):
        return TurnEnd.QUESTION
    if stripped.endswith(_SENTENCE_ENDS):
        return TurnEnd.SENTENCE
    return TurnEnd.UNFINISHED if punctuated or last in CONTINUING_WORDS else TurnEnd.SENTENCE
