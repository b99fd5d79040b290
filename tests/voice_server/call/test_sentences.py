"""SentenceSplitter: sentences as soon as they are complete, the same however the text streams."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from voice_server.call.sentences import SentenceSplitter

PARAGRAPH = (
    "Hello there! Our opening hours are 9.30 to 5.30 on weekdays. "
    'Is that "early enough"? We are closed on holidays, e.g. the first of May. '
    "Prices start at 3.5 dollars (tax included). 2 people can book at once… "
    "Please call back tomorrow.\nThank you for calling"
)
EXPECTED = [
    "Hello there!",
    "Our opening hours are 9.30 to 5.30 on weekdays.",
    'Is that "early enough"?',
    "We are closed on holidays, e.g. the first of May.",
    "Prices start at 3.5 dollars (tax included).",
    "2 people can book at once…",
    "Please call back tomorrow.",
    "Thank you for calling",
]


def split_all(pieces: list[str]) -> list[str]:
    splitter = SentenceSplitter()
    sentences = [sentence for piece in pieces for sentence in splitter.push(piece)]
    if rest := splitter.flush():
        sentences.append(rest)
    return sentences


def test_sentence_comes_out_as_soon_as_the_next_one_starts() -> None:
    splitter = SentenceSplitter()

    assert splitter.push("Hello there.") == []
    assert splitter.push(" ") == []
    assert splitter.push("How") == ["Hello there."]
    assert splitter.push(" are you? I") == ["How are you?"]
    assert splitter.flush() == "I"


def test_paragraph_all_at_once() -> None:
    assert split_all([PARAGRAPH]) == EXPECTED


def test_paragraph_character_by_character() -> None:
    assert split_all(list(PARAGRAPH)) == EXPECTED


@given(st.sets(st.integers(min_value=1, max_value=len(PARAGRAPH) - 1)))
def test_any_split_gives_the_same_sentences(cuts: set[int]) -> None:
    bounds = [0, *sorted(cuts), len(PARAGRAPH)]
    pieces = [PARAGRAPH[start:end] for start, end in pairwise(bounds)]
    assert split_all(pieces) == EXPECTED


def test_decimal_number_does_not_split() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("It costs 3.5 dollars and ") == []
    assert splitter.flush() == "It costs 3.5 dollars and"


def test_abbreviation_before_lowercase_does_not_split() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Bring something, e.g. this form, and ") == []
    assert splitter.flush() == "Bring something, e.g. this form, and"


def test_flush_returns_the_rest_and_empties_the_splitter() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("One. Two") == ["One."]
    assert splitter.push(" three") == []

    assert splitter.flush() == "Two three"
    assert splitter.flush() == ""


def test_flush_after_a_complete_sentence_returns_it() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("All done.") == []
    assert splitter.flush() == "All done."


def test_blank_lines_give_no_empty_sentences() -> None:
    assert split_all(["First\n", "\n\n", "Second\n\n"]) == ["First", "Second"]


def test_long_clause_without_full_stop_is_cut_at_the_last_comma() -> None:
    clause = "we open at nine on weekdays and at ten on saturdays"
    text = f"{clause}, {clause}, {clause}, {clause}, and on sundays we"
    assert len(text) > 220

    splitter = SentenceSplitter()
    sentences = splitter.push(text)

    assert sentences == [f"{clause}, {clause}, {clause}, {clause},"]
    assert splitter.flush() == "and on sundays we"


def test_long_clause_streamed_is_cut_once_it_is_too_long() -> None:
    words = ("word, " * 60).split(" ")
    splitter = SentenceSplitter()

    first_cut: list[str] = []
    sent = ""
    for word in words:
        sent += word + " "
        if cut := splitter.push(word + " "):
            first_cut = cut
            break

    assert len(sent) > 220
    assert len(first_cut) == 1
    assert first_cut[0].endswith(",")
    assert sent.startswith(first_cut[0])


def test_short_clause_is_not_cut_at_a_comma() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Well, yes, of course, ") == []
