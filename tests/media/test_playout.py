import pytest

from media.playout import Chunk, Playout, SpokenText


def _send(playout: Playout, utterance: int, text_end: int, audio_ms: float = 200.0) -> Chunk:
    chunk = Chunk(playout.next_mark_name(utterance), utterance, text_end, audio_ms)
    playout.sent(chunk)
    return chunk


def test_mark_names_are_unique() -> None:
    playout = Playout()
    names = [playout.next_mark_name(u) for u in (1, 1, 2, 1)]
    assert names == ["u1-c1", "u1-c2", "u2-c3", "u1-c4"]


def test_echoes_advance_heard_text() -> None:
    playout = Playout()
    a, b = _send(playout, 1, 10), _send(playout, 1, 25, 300.0)
    assert playout.outstanding_ms() == 500.0
    assert not playout.idle
    assert playout.heard_text_end(1) == 0
    assert playout.echoed(a.name) == a
    assert playout.heard_text_end(1) == 10
    assert playout.outstanding_ms() == 300.0
    assert not playout.last_played(1)
    assert playout.echoed(b.name) == b
    assert playout.heard_text_end(1) == 25
    assert playout.idle
    assert playout.last_played(1)


def test_a_later_echo_plays_earlier_chunks() -> None:
    playout = Playout()
    _send(playout, 1, 10)
    _send(playout, 1, 20)
    c = _send(playout, 2, 5)
    assert playout.echoed(c.name) == c
    assert playout.heard_text_end(1) == 20
    assert playout.heard_text_end(2) == 5
    assert playout.last_played(1)
    assert playout.last_played(2)


def test_clear_cancels_outstanding_and_their_echoes_do_not_count() -> None:
    playout = Playout()
    a = _send(playout, 1, 10)
    b = _send(playout, 1, 20)
    c = _send(playout, 1, 30)
    assert playout.echoed(a.name) == a
    assert playout.clear() == [b, c]
    assert playout.idle
    assert playout.outstanding_ms() == 0.0
    # The next reply starts before Twilio's echoes of the cleared marks arrive.
    d = _send(playout, 2, 7)
    # Twilio echoes every pending mark after a clear: they must not count as played.
    assert playout.echoed(b.name) is None
    assert playout.echoed(c.name) is None
    assert playout.heard_text_end(1) == 10
    assert not playout.last_played(1)
    assert not playout.idle
    assert playout.echoed(d.name) == d
    assert playout.last_played(2)


def test_unknown_and_repeated_echoes_are_ignored() -> None:
    playout = Playout()
    a = _send(playout, 1, 10)
    assert playout.echoed("nope") is None
    assert not playout.idle
    assert playout.echoed(a.name) == a
    assert playout.echoed(a.name) is None


def test_nothing_played_yet() -> None:
    playout = Playout()
    assert playout.idle
    assert playout.heard_text_end(3) == 0
    assert not playout.last_played(3)
    assert playout.clear() == []


def test_duplicate_names_are_refused() -> None:
    playout = Playout()
    chunk = _send(playout, 1, 1)
    with pytest.raises(ValueError, match="already in use"):
        playout.sent(chunk)
    playout.clear()
    with pytest.raises(ValueError, match="already in use"):
        playout.sent(chunk)


def test_spoken_text_whole_sentences_and_a_share_of_the_one_playing() -> None:
    spoken = SpokenText()
    spoken.add_sentence("One two.")
    spoken.chunk_sent("m1", 100.0)
    spoken.sentence_sent("m2")
    start = spoken.add_sentence("Three four five six.")
    spoken.chunk_sent("m3", 100.0)
    spoken.chunk_sent("m4", 100.0)
    spoken.sentence_sent("m5")
    spoken.played("m3")  # half of the second sentence's audio played
    assert spoken.heard(start) == "One two. Three four"
    assert spoken.heard(start, complete=True) == "One two. Three four five six."


def test_spoken_text_continuing_keeps_what_was_heard_before() -> None:
    spoken = SpokenText("One two.")
    assert spoken.heard(0) == "One two."
    spoken.add_sentence("Three.")
    assert spoken.text == "One two. Three."
    assert not spoken.marked
