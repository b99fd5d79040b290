import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.twilio import (
    MAX_FRAME_CHARS,
    MAX_MEDIA_PAYLOAD_BYTES,
    Clear,
    Connected,
    Dtmf,
    Mark,
    Media,
    OutboundMark,
    OutboundMedia,
    ProtocolError,
    Start,
    Stop,
    build_clear,
    build_connected,
    build_dtmf,
    build_inbound_media,
    build_mark,
    build_mark_echo,
    build_media,
    build_start,
    build_stop,
    parse_event,
    parse_outbound,
)

START = Start(
    stream_sid="MZ1",
    call_sid="CA1",
    account_sid="AC1",
    tracks=("inbound",),
    encoding="audio/x-mulaw",
    sample_rate=8000,
    channels=1,
    custom_parameters={"token": "t", "lead_id": "42"},
)

# Frames copied from twilio.md §2.
DOC_FRAMES = [
    '{"event":"connected","protocol":"Call","version":"1.0.0"}',
    '{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"streamSid":"MZ1",'
    '"accountSid":"AC1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":'
    '"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"token":"t","lead_id":"42"}}}',
    '{"event":"media","sequenceNumber":"2","streamSid":"MZ1",'
    '"media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"fn5+fv9/"}}',
    '{"event":"dtmf","sequenceNumber":"57","streamSid":"MZ1",'
    '"dtmf":{"track":"inbound_track","digit":"1"}}',
    '{"event":"mark","sequenceNumber":"90","streamSid":"MZ1","mark":{"name":"u3-c7"}}',
    '{"event":"stop","sequenceNumber":"400","streamSid":"MZ1",'
    '"stop":{"accountSid":"AC1","callSid":"CA1"}}',
]


def test_documented_frames_parse() -> None:
    events = [parse_event(frame) for frame in DOC_FRAMES]
    assert events == [
        Connected(protocol="Call", version="1.0.0"),
        START,
        Media(track="inbound", chunk=1, timestamp=5, payload=base64.b64decode("fn5+fv9/")),
        Dtmf(digit="1"),
        Mark(name="u3-c7"),
        Stop(call_sid="CA1", account_sid="AC1"),
    ]


def test_utf8_bytes_are_accepted() -> None:
    assert parse_event(DOC_FRAMES[0].encode()) == Connected("Call", "1.0.0")


def test_start_is_immutable_and_hashable() -> None:
    start = parse_event(DOC_FRAMES[1])
    assert isinstance(start, Start)
    with pytest.raises(TypeError):
        start.custom_parameters["x"] = "y"  # type: ignore[index]
    assert hash(start) == hash(START)


def _frame(**fields: Any) -> str:
    return json.dumps(fields)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"\xff\xfe\x00", "UTF-8"),
        ("not json", "JSON"),
        ("[1, 2]", "JSON object"),
        ('{"sequenceNumber": "1"}', "event"),
        (_frame(event=3), "event"),
        (_frame(event="bogus"), "unknown event"),
        (_frame(event="connected", protocol="Call"), "version"),
        (_frame(event="media"), "media"),
        (_frame(event="media", media=[]), "object"),
        (
            _frame(event="media", media={"track": "inbound", "chunk": "1", "timestamp": "0"}),
            "payload",
        ),
        (
            _frame(
                event="media",
                media={"track": "inbound", "chunk": "x", "timestamp": "0", "payload": ""},
            ),
            "chunk",
        ),
        (
            _frame(
                event="media",
                media={"track": "inbound", "chunk": "1", "timestamp": "-1", "payload": ""},
            ),
            "timestamp",
        ),
        (
            _frame(
                event="media",
                media={"track": "inbound", "chunk": 1, "timestamp": 0, "payload": "@@@"},
            ),
            "base64",
        ),
        (
            _frame(
                event="media",
                media={"track": "inbound", "chunk": 1, "timestamp": 0, "payload": "é"},
            ),
            "base64",
        ),
        (_frame(event="mark", mark={"name": 7}), "mark.name"),
        (_frame(event="dtmf", dtmf={}), "dtmf.digit"),
        (_frame(event="stop", stop={"callSid": "CA1"}), "accountSid"),
        ("[" * 50_000, "JSON"),
        (" " * (MAX_FRAME_CHARS + 1), "exceeds"),
    ],
)
def test_malformed_frames_raise_protocol_error(frame: str | bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_event(frame)


@pytest.mark.parametrize(
    "change",
    [
        {"encoding": "audio/l16"},
        {"sampleRate": 16000},
        {"channels": 2},
        {"sampleRate": True},
    ],
)
def test_start_with_wrong_format_is_refused(change: dict[str, Any]) -> None:
    msg = json.loads(DOC_FRAMES[1])
    msg["start"]["mediaFormat"].update(change)
    with pytest.raises(ProtocolError):
        parse_event(json.dumps(msg))


def test_start_with_bad_tracks_or_parameters() -> None:
    for key, value in [("tracks", "inbound"), ("tracks", [1]), ("customParameters", {"a": 1})]:
        msg = json.loads(DOC_FRAMES[1])
        msg["start"][key] = value
        with pytest.raises(ProtocolError, match=key):
            parse_event(json.dumps(msg))


def test_outbound_shapes_are_exact() -> None:
    assert build_media("MZ1", b"\xff\x7f") == (
        '{"event":"media","streamSid":"MZ1","media":{"payload":"/38="}}'
    )
    assert (
        build_mark("MZ1", "u3-c7") == '{"event":"mark","streamSid":"MZ1","mark":{"name":"u3-c7"}}'
    )
    assert build_clear("MZ1") == '{"event":"clear","streamSid":"MZ1"}'


def test_parse_outbound() -> None:
    assert parse_outbound(build_media("MZ1", b"\xff" * 160)) == OutboundMedia(b"\xff" * 160)
    assert parse_outbound(build_mark("MZ1", "u1-c1")) == OutboundMark("u1-c1")
    assert parse_outbound(build_clear("MZ1")) == Clear()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ('{"event":"clear"}', "exactly"),
        ('{"event":"clear","streamId":"MZ1"}', "exactly"),
        ('{"event":"clear","streamSid":5}', "streamSid"),
        ('{"event":"mark","streamSid":"MZ1"}', "exactly"),
        ('{"event":"mark","streamSid":"MZ1","mark":{}}', "exactly"),
        (
            '{"event":"media","streamSid":"MZ1","media":{"payload":"","track":"outbound"}}',
            "exactly",
        ),
        ('{"event":"media","streamSid":"MZ1","media":{"payload":"*"}}', "base64"),
        ('{"event":"start","streamSid":"MZ1"}', "unknown"),
    ],
)
def test_parse_outbound_refuses_what_twilio_refuses(frame: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_outbound(frame)


def test_parse_outbound_refuses_binary() -> None:
    with pytest.raises(ProtocolError, match="binary"):
        parse_outbound(b"{}")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 1, 159, 161, MAX_MEDIA_PAYLOAD_BYTES])
def test_media_payloads_of_any_size_up_to_a_second_parse(size: int) -> None:
    event = parse_event(build_inbound_media(1, "MZ", 1, 20, b"\xff" * size))
    assert isinstance(event, Media)
    assert len(event.payload) == size


def test_a_media_payload_over_a_second_is_refused() -> None:
    frame = build_inbound_media(1, "MZ", 1, 20, b"\xff" * (MAX_MEDIA_PAYLOAD_BYTES + 1))
    with pytest.raises(ProtocolError, match=r"media\.payload of 8001 bytes exceeds 8000"):
        parse_event(frame)


# --- property tests: parse(build(x)) == x ---------------------------------------------------

texts = st.text(max_size=40)
counters = st.integers(min_value=0, max_value=2**40)


@given(counters, texts, counters, counters, st.binary(max_size=400))
def test_media_round_trip(seq: int, sid: str, chunk: int, ts: int, payload: bytes) -> None:
    event = parse_event(build_inbound_media(seq, sid, chunk, ts, payload))
    assert event == Media(track="inbound", chunk=chunk, timestamp=ts, payload=payload)


starts = st.builds(
    Start,
    stream_sid=texts,
    call_sid=texts,
    account_sid=texts,
    tracks=st.lists(st.sampled_from(["inbound", "outbound"]), max_size=2).map(tuple),
    encoding=st.just("audio/x-mulaw"),
    sample_rate=st.just(8000),
    channels=st.just(1),
    custom_parameters=st.dictionaries(texts, texts, max_size=5),
)


@given(counters, starts)
def test_start_round_trip(seq: int, start: Start) -> None:
    assert parse_event(build_start(seq, start)) == start


@given(counters, texts, texts, texts)
def test_small_events_round_trip(seq: int, sid: str, text: str, other: str) -> None:
    assert parse_event(build_connected()) == Connected("Call", "1.0.0")
    assert parse_event(build_dtmf(seq, sid, text)) == Dtmf(text)
    assert parse_event(build_mark_echo(seq, sid, text)) == Mark(text)
    assert parse_event(build_stop(seq, sid, text, other)) == Stop(text, other)


@given(texts, texts, st.binary(max_size=400))
def test_outbound_round_trip(sid: str, name: str, ulaw: bytes) -> None:
    assert parse_outbound(build_media(sid, ulaw)) == OutboundMedia(ulaw)
    assert parse_outbound(build_mark(sid, name)) == OutboundMark(name)
    assert parse_outbound(build_clear(sid)) == Clear()


# --- fuzz: anything either parses or raises ProtocolError -------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
field_names = st.sampled_from(
    ["event", "media", "start", "mark", "dtmf", "stop", "track", "chunk", "timestamp",
     "payload", "name", "digit", "streamSid", "callSid", "accountSid", "tracks",
     "mediaFormat", "encoding", "sampleRate", "channels", "customParameters",
     "protocol", "version"]
)  # fmt: skip
event_names = st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "clear"])
plausible = st.recursive(
    event_names | st.text(max_size=8) | st.integers(-1, 9000) | st.just("fn5+") | st.none(),
    lambda children: (
        st.dictionaries(field_names, children, max_size=6) | st.lists(children, max_size=3)
    ),
    max_leaves=25,
)


def _parse_or_protocol_error(frame: str | bytes) -> None:
    with contextlib.suppress(ProtocolError):
        parse_event(frame)
    if isinstance(frame, str):
        with contextlib.suppress(ProtocolError):
            parse_outbound(frame)


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_fuzz_raw_text(frame: str | bytes) -> None:
    _parse_or_protocol_error(frame)


@given(json_values)
def test_fuzz_json_values(value: object) -> None:
    _parse_or_protocol_error(json.dumps(value))


@given(st.dictionaries(field_names, plausible, max_size=6), event_names)
def test_fuzz_plausible_messages(fields: dict[str, object], event: str) -> None:
    _parse_or_protocol_error(json.dumps({**fields, "event": event}))


@given(st.sampled_from(DOC_FRAMES), st.data())
def test_fuzz_mutated_documented_frames(frame: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(frame)))
    junk = data.draw(st.text(max_size=5))
    _parse_or_protocol_error(frame[:cut] + junk + frame[cut + len(junk) :])
