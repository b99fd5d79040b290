import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.turns import (
    Endpointer,
    EndpointingOptions,
    EndpointState,
    SpeechEnded,
    SpeechStarted,
    TurnEnd,
    interruption_is_false,
    turn_end,
)


def _run(
    endpointer: Endpointer, pattern: str, start: float = 0.0
) -> list[tuple[int, SpeechStarted | SpeechEnded]]:
    """Feed a pattern of 'S' (speech) and '.' (non-speech) frames; frame i ends at (i+1)*20 ms."""
    events = []
    for i, mark in enumerate(pattern):
        event = endpointer.process(mark == "S", start + (i + 1) * 0.02)
        if event is not None:
            events.append((i, event))
    return events


def test_speech_starts_after_min_speech_and_ends_after_silence() -> None:
    endpointer = Endpointer(EndpointingOptions())
    events = _run(endpointer, "...." + "S" * 20 + "." * 40)
    assert [i for i, _ in events] == [8, 23 + 30]
    started, ended = events[0][1], events[1][1]
    assert isinstance(started, SpeechStarted)
    assert started.at == pytest.approx(0.08)
    assert isinstance(ended, SpeechEnded)
    assert ended.started_at == pytest.approx(0.08)
    assert ended.last_speech_at == pytest.approx(0.48)
    assert not endpointer.in_speech


def test_short_blip_is_not_speech() -> None:
    endpointer = Endpointer(EndpointingOptions())
    assert _run(endpointer, "SSS" + "." * 10 + "SS" + "." * 50) == []
    assert endpointer.state is EndpointState.SILENCE


def test_onset_tolerates_isolated_gaps() -> None:
    endpointer = Endpointer(EndpointingOptions())
    events = _run(endpointer, "SS.S.SS" + "S" * 5)
    assert len(events) == 1
    assert events[0] == (6, SpeechStarted(at=0.0))
    assert endpointer.in_speech


def test_pauses_shorter_than_end_silence_keep_speech_going() -> None:
    endpointer = Endpointer(EndpointingOptions(end_silence_ms=200))
    events = _run(endpointer, "S" * 10 + "." * 9 + "S" * 5 + "." * 10)
    kinds = [type(event) for _, event in events]
    assert kinds == [SpeechStarted, SpeechEnded]
    ended = events[1][1]
    assert isinstance(ended, SpeechEnded)
    assert ended.started_at == 0.0
    assert ended.last_speech_at == pytest.approx(0.48)


def test_reset_drops_speech_in_progress() -> None:
    endpointer = Endpointer(EndpointingOptions())
    _run(endpointer, "S" * 10)
    assert endpointer.in_speech
    endpointer.reset()
    assert not endpointer.in_speech
    assert _run(endpointer, "." * 50) == []


def test_minimum_of_one_frame_starts_at_once() -> None:
    endpointer = Endpointer(EndpointingOptions(min_speech_ms=20))
    started = endpointer.process(True, 1.02)
    assert isinstance(started, SpeechStarted)
    assert started.at == pytest.approx(1.0)


@given(st.lists(st.booleans(), max_size=300))
def test_events_alternate_and_are_ordered(decisions: list[bool]) -> None:
    endpointer = Endpointer(EndpointingOptions())
    events = _run(endpointer, "".join("S" if d else "." for d in decisions))
    for (_, first), (_, second) in itertools.pairwise(events):
        assert type(first) is not type(second)
    for _, event in events:
        if isinstance(event, SpeechEnded):
            assert event.last_speech_at - event.started_at >= 0.1 - 1e-9
    if events:
        assert isinstance(events[0][1], SpeechStarted)
    assert endpointer.in_speech == (bool(events) and isinstance(events[-1][1], SpeechStarted))


def test_speech_ms_is_the_latest_run_ended_or_not() -> None:
    endpointer = Endpointer(EndpointingOptions())
    assert endpointer.speech_ms == 0
    _run(endpointer, "S" * 30)
    assert endpointer.speech_ms == pytest.approx(600)  # still speaking: up to its last frame
    _run(endpointer, "." * 40 + "SSS", start=0.6)  # ended, then an onset too short to count
    assert endpointer.speech_ms == pytest.approx(600)


ACKS = ("mm-hm", "yeah", "okay", "i see")
STOPS = ("stop", "wait")


@pytest.mark.parametrize(
    ("text", "speech_ms", "dismissed"),
    [
        ("", 2000, True),  # noise the recogniser heard no words in
        ("Mm-hm.", 2000, True),
        ("Yeah, okay, I see.", 2000, True),  # acknowledgements only, however long
        ("Hello, I would like to book an appointment.", 0, False),  # a sentence, however short
        ("next Tuesday", 100, False),  # two other words
        ("Yeah, Tuesday please", 100, False),
        ("Stop.", 100, False),  # an interrupting word, however short
        ("yeah wait", 100, False),
        ("uh", 200, True),  # one short word: a cough heard as a word
        ("Tuesday", 200, True),
        ("Tuesday", 600, False),  # one word, long enough to be meant
    ],
)
def test_an_interruption_is_dismissed_only_without_real_words(
    text: str, speech_ms: float, dismissed: bool
) -> None:
    judged = interruption_is_false(
        text, speech_ms, acknowledgements=ACKS, interruptions=STOPS, short_ms=350
    )
    assert judged is dismissed


@pytest.mark.parametrize(
    ("text", "punctuated", "end"),
    [
        ("What are your opening hours?", True, TurnEnd.QUESTION),
        ("I would like to book a table.", True, TurnEnd.SENTENCE),
        ("I would like to book", True, TurnEnd.UNFINISHED),  # no full stop from a punctuator
        ("I would like to book", False, TurnEnd.SENTENCE),  # ...means nothing from others
        ("I would like to book a table for", False, TurnEnd.UNFINISHED),
        ("I need a table for four, and", True, TurnEnd.UNFINISHED),
        ("I need a table for four and.", True, TurnEnd.UNFINISHED),  # a stop at every pause
        ("My number is, um.", True, TurnEnd.UNFINISHED),
        ("Two people,", False, TurnEnd.UNFINISHED),
        ("Let me think...", True, TurnEnd.UNFINISHED),
        ("Let me think…", True, TurnEnd.UNFINISHED),
        ("I'll take it.", True, TurnEnd.SENTENCE),
        ("That's what I came for.", True, TurnEnd.SENTENCE),  # "for" before a full stop
        ("Is it the, um?", True, TurnEnd.UNFINISHED),
        ("", True, TurnEnd.SENTENCE),
    ],
)
def test_how_the_words_end_says_whether_the_turn_may_go_on(
    text: str, punctuated: bool, end: TurnEnd
) -> None:
    assert turn_end(text, punctuated=punctuated) is end
