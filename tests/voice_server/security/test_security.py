"""Stream tokens (once, in time, for one call, unforgeable) and Twilio webhook signatures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from voice_server.security.signed_tokens import SignedTokens
from voice_server.security.stream_tokens import StreamGrant, StreamTokenError, StreamTokens
from voice_server.security.webhook_signature import public_url, twilio_signature_valid

SECRET = "k" * 32
TTL = 60.0
NOW = 1_750_000_000.0
GRANT = StreamGrant("CA1", "a" * 24)


@pytest.fixture
def tokens() -> StreamTokens:
    return StreamTokens(SECRET, TTL)


def test_valid_token_is_accepted_once(tokens: StreamTokens) -> None:
    parameters = tokens.mint(GRANT, now=NOW)

    tokens.redeem(parameters, "CA1", now=NOW + 1)

    with pytest.raises(StreamTokenError, match=r"^stream token was already used$"):
        tokens.redeem(parameters, "CA1", now=NOW + 2)


def test_a_stream_is_granted_its_call_as_the_webhook_recorded_it(tokens: StreamTokens) -> None:
    placed = StreamGrant("CA1", "a" * 24, scheduled_call_id="b" * 24)

    assert tokens.redeem(tokens.mint(GRANT, now=NOW), "CA1", now=NOW) == GRANT
    assert tokens.redeem(tokens.mint(placed, now=NOW + 1), "CA1", now=NOW + 1) == placed


def test_a_server_of_the_earlier_version_accepts_the_token_it_knows(tokens: StreamTokens) -> None:
    """During a rolling upgrade either version may take the stream: the earlier one checks
    `token` alone, whose payload it expects to be the CallSid."""
    earlier = SignedTokens(SECRET, "media streams", "stream token", TTL)

    assert earlier.open(tokens.mint(GRANT, now=NOW)["token"], NOW) == "CA1"


def test_twiml_of_the_earlier_version_has_no_grant(tokens: StreamTokens) -> None:
    earlier = SignedTokens(SECRET, "media streams", "stream token", TTL).mint("CA1", NOW)[0]

    assert tokens.redeem({"token": earlier}, "CA1", now=NOW) == StreamGrant("CA1", "")


def test_a_forged_grant_is_refused_and_leaves_the_token_unused(tokens: StreamTokens) -> None:
    parameters = tokens.mint(GRANT, now=NOW)
    forged = tokens.mint(StreamGrant("CA1", "f" * 24), now=NOW)["grant"].replace("f", "e", 1)

    with pytest.raises(StreamTokenError, match=r"^stream grant signature is wrong$"):
        tokens.redeem({**parameters, "grant": forged}, "CA1", now=NOW)

    assert tokens.redeem(parameters, "CA1", now=NOW) == GRANT


def test_a_grant_of_another_call_is_refused(tokens: StreamTokens) -> None:
    other = tokens.mint(StreamGrant("CA2", "b" * 24), now=NOW)
    parameters = {**tokens.mint(GRANT, now=NOW), "grant": other["grant"]}

    with pytest.raises(StreamTokenError, match=r"^stream token was issued for another call$"):
        tokens.redeem(parameters, "CA1", now=NOW)


def test_a_grant_whose_fields_hold_the_separator_is_not_minted(tokens: StreamTokens) -> None:
    with pytest.raises(ValueError, match="may not hold"):
        tokens.mint(StreamGrant("CA1", "a:b"), now=NOW)


def test_a_second_stream_of_a_call_needs_a_token_of_its_own(tokens: StreamTokens) -> None:
    first, second = tokens.mint(GRANT, now=NOW), tokens.mint(GRANT, now=NOW + 5)
    tokens.redeem(first, "CA1", now=NOW + 6)

    tokens.redeem(second, "CA1", now=NOW + 7)

    with pytest.raises(StreamTokenError, match=r"^stream token was already used$"):
        tokens.redeem(second, "CA1", now=NOW + 8)


def test_token_is_accepted_until_its_expiry(tokens: StreamTokens) -> None:
    tokens.redeem(tokens.mint(GRANT, now=NOW), "CA1", now=NOW + TTL)


def test_expired_token_is_refused(tokens: StreamTokens) -> None:
    parameters = tokens.mint(GRANT, now=NOW)

    with pytest.raises(StreamTokenError, match=r"^stream token has expired$"):
        tokens.redeem(parameters, "CA1", now=NOW + TTL + 1)


def test_other_calls_token_is_refused(tokens: StreamTokens) -> None:
    parameters = tokens.mint(GRANT, now=NOW)

    with pytest.raises(StreamTokenError, match=r"^stream token was issued for another call$"):
        tokens.redeem(parameters, "CA2", now=NOW)


def test_refused_token_for_another_call_does_not_use_it_up(tokens: StreamTokens) -> None:
    parameters = tokens.mint(GRANT, now=NOW)
    with pytest.raises(StreamTokenError):
        tokens.redeem(parameters, "CA2", now=NOW)

    tokens.redeem(parameters, "CA1", now=NOW)


def test_tampered_mac_is_refused(tokens: StreamTokens) -> None:
    call_sid, expiry, mac = tokens.mint(GRANT, now=NOW)["token"].split(".")
    forged = mac[:-1] + ("A" if mac[-1] != "A" else "B")

    with pytest.raises(StreamTokenError, match=r"^stream token signature is wrong$"):
        tokens.redeem({"token": f"{call_sid}.{expiry}.{forged}"}, "CA1", now=NOW)


def test_extended_expiry_is_refused(tokens: StreamTokens) -> None:
    call_sid, expiry, mac = tokens.mint(GRANT, now=NOW)["token"].split(".")

    with pytest.raises(StreamTokenError, match=r"^stream token signature is wrong$"):
        tokens.redeem({"token": f"{call_sid}.{int(expiry) + 3600}.{mac}"}, "CA1", now=NOW)


def test_token_moved_to_another_call_is_refused(tokens: StreamTokens) -> None:
    _, expiry, mac = tokens.mint(GRANT, now=NOW)["token"].split(".")

    with pytest.raises(StreamTokenError, match=r"^stream token signature is wrong$"):
        tokens.redeem({"token": f"CA2.{expiry}.{mac}"}, "CA2", now=NOW)


def test_token_from_another_secret_is_refused(tokens: StreamTokens) -> None:
    parameters = StreamTokens("z" * 32, TTL).mint(GRANT, now=NOW)

    with pytest.raises(StreamTokenError, match=r"^stream token signature is wrong$"):
        tokens.redeem(parameters, "CA1", now=NOW)


@pytest.mark.parametrize(
    "token",
    ["", "CA1", "CA1.123", "CA1.123.mac.extra", "CA1.soon.mac", "CA1.-5.mac", "CA1..mac"],
)
def test_malformed_token_is_refused(tokens: StreamTokens, token: str) -> None:
    with pytest.raises(StreamTokenError, match=r"^malformed stream token$"):
        tokens.redeem({"token": token}, "CA1", now=NOW)


# str.isdigit() accepts "²" but int() does not; hmac.compare_digest() refuses non-ASCII str.
@pytest.mark.parametrize("token", ["CA1.\u00b2.mac", "CA1.1750000060.\u00e9"])
def test_token_with_non_ascii_characters_is_refused(tokens: StreamTokens, token: str) -> None:
    with pytest.raises(StreamTokenError):
        tokens.redeem({"token": token}, "CA1", now=NOW)


_PART = st.text(st.characters(exclude_characters="."), max_size=20)
_DIGITS = st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=12)
_THREE_PARTS = st.tuples(_PART, st.one_of(_DIGITS, _PART), _PART).map(".".join)
_FORGED = st.one_of(st.text(max_size=80), _THREE_PARTS)


@given(token=_FORGED)
def test_any_forged_text_is_refused_with_stream_token_error(token: str) -> None:
    with pytest.raises(StreamTokenError):
        StreamTokens(SECRET, TTL).redeem({"token": token}, "CA1", now=NOW)


@given(grant=_FORGED)
def test_any_forged_grant_beside_a_genuine_token_is_refused(grant: str) -> None:
    tokens = StreamTokens(SECRET, TTL)
    with pytest.raises(StreamTokenError):
        tokens.redeem({**tokens.mint(GRANT, now=NOW), "grant": grant}, "CA1", now=NOW)


def _sign(token: str, url: str, params: dict[str, str]) -> str:
    signature: str = RequestValidator(token).compute_signature(url, params)
    return signature


URL = "https://voice.example.com/twilio/voice"
PARAMS = {"CallSid": "CA1", "From": "+15557654321", "To": "+15551234567"}


def test_signature_under_the_right_token_is_valid() -> None:
    signature = _sign("token-a", URL, PARAMS)
    assert twilio_signature_valid(URL, PARAMS, signature, ["token-a"])


def test_signature_under_a_wrong_token_is_invalid() -> None:
    signature = _sign("token-a", URL, PARAMS)
    assert not twilio_signature_valid(URL, PARAMS, signature, ["token-b"])


def test_signature_with_a_changed_param_is_invalid() -> None:
    signature = _sign("token-a", URL, PARAMS)
    changed = {**PARAMS, "From": "+15550000000"}
    assert not twilio_signature_valid(URL, changed, signature, ["token-a"])


def test_signature_with_an_added_param_is_invalid() -> None:
    signature = _sign("token-a", URL, PARAMS)
    added = {**PARAMS, "Digits": "1"}
    assert not twilio_signature_valid(URL, added, signature, ["token-a"])


def test_signature_for_a_changed_url_is_invalid() -> None:
    signature = _sign("token-a", URL, PARAMS)
    assert not twilio_signature_valid(
        "https://voice.example.com/twilio/status", PARAMS, signature, ["token-a"]
    )
    assert not twilio_signature_valid(
        "https://evil.example.com/twilio/voice", PARAMS, signature, ["token-a"]
    )


def test_signature_under_any_of_several_tokens_is_valid() -> None:
    signature = _sign("token-new", URL, PARAMS)
    assert twilio_signature_valid(URL, PARAMS, signature, ["token-old", "token-new"])
    assert twilio_signature_valid(URL, PARAMS, signature, ["token-new", "token-old"])


def test_no_tokens_means_no_valid_signature() -> None:
    signature = _sign("token-a", URL, PARAMS)
    assert not twilio_signature_valid(URL, PARAMS, signature, [])


def test_signature_over_a_url_with_query_checks_the_query() -> None:
    url = public_url("https://voice.example.com", "/twilio/voice", "agent=front%20desk&x=1")
    signature = _sign("token-a", url, PARAMS)

    assert twilio_signature_valid(url, PARAMS, signature, ["token-a"])
    assert not twilio_signature_valid(
        public_url("https://voice.example.com", "/twilio/voice", "agent=back&x=1"),
        PARAMS,
        signature,
        ["token-a"],
    )


def test_public_url_keeps_the_raw_query() -> None:
    assert (
        public_url("https://voice.example.com", "/twilio/voice", "b=2&a=%20x+y&a=1")
        == "https://voice.example.com/twilio/voice?b=2&a=%20x+y&a=1"
    )


def test_public_url_without_query_has_no_question_mark() -> None:
    assert (
        public_url("https://voice.example.com", "/twilio/voice", "")
        == "https://voice.example.com/twilio/voice"
    )
