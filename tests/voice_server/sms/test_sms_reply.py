"""`fit_sms`: replies kept within one Twilio message, cut where a reader expects a cut."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from voice_server.sms.reply import fit_sms
from voice_server.twilio_api.rest import SMS_MAX_CHARS


def test_a_short_reply_is_left_as_it_is() -> None:
    assert fit_sms("We open at 9. See you!") == "We open at 9. See you!"


def test_a_long_reply_is_cut_after_its_last_whole_sentence() -> None:
    assert fit_sms("One two. Three four! Five six seven.", limit=25) == "One two. Three four!"


def test_a_sentence_ending_exactly_at_the_limit_is_kept() -> None:
    assert fit_sms("Hello there. More words", limit=12) == "Hello there."


def test_without_a_sentence_end_it_is_cut_after_a_whole_word() -> None:
    assert fit_sms("alpha beta gamma delta", limit=13) == "alpha beta…"


def test_one_endless_word_is_cut_hard() -> None:
    assert fit_sms("x" * 2000) == "x" * (SMS_MAX_CHARS - 1) + "…"


@given(st.text(min_size=0, max_size=4000))
def test_any_reply_fits_and_is_a_prefix(text: str) -> None:
    fitted = fit_sms(text)
    assert len(fitted) <= SMS_MAX_CHARS
    assert text.startswith(fitted.removesuffix("…"))
