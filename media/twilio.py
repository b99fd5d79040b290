"""The Twilio Media Streams protocol, sans I/O: JSON text in, frozen events out, and back.

Owns the wire shapes of twilio.md §2 (what Twilio sends) and §3 (what the server sends):
`parse_event()` for inbound frames, `build_media/mark/clear()` for outbound ones, and the mirror
pair (`build_connected()`…`build_stop()`, `parse_outbound()`) for a simulator playing Twilio.
Every malformed input raises `ProtocolError`; nothing here touches a socket or a clock.

Fifty frames a second per call pass through here: JSON goes through orjson and base64 straight
through `binascii` (a frame parsed in 70 % of the time, an outbound message built in a quarter).
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

import orjson

MAX_FRAME_CHARS = 64 * 1024
"""Inbound frames longer than this are refused before JSON parsing (a media frame is ~300)."""
MAX_MEDIA_PAYLOAD_BYTES = 8000
"""One second of 8 kHz μ-law. Twilio sends 160 bytes (20 ms) per `media` message; a payload
over a second is no phone line's, and is refused rather than fed to the call."""

_ENCODING = "audio/x-mulaw"
_SAMPLE_RATE = 8000
_CHANNELS = 1
_MAX_COUNTER_DIGITS = 20


class ProtocolError(ValueError):
    """A frame that does not follow the Media Streams protocol."""


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    encoding: str
    sample_rate: int
    channels: int
    custom_parameters: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True, slots=True)
class Media:
    track: str
    chunk: int
    timestamp: int
    payload: bytes
    """Decoded μ-law bytes: usually 160 (20 ms), any size up to `MAX_MEDIA_PAYLOAD_BYTES`."""


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    call_sid: str
    account_sid: str


Event: TypeAlias = Connected | Start | Media | Dtmf | Mark | Stop


@dataclass(frozen=True, slots=True)
class OutboundMedia:
    payload: bytes


@dataclass(frozen=True, slots=True)
class OutboundMark:
    name: str


@dataclass(frozen=True, slots=True)
class Clear:
    pass


# --- field access: every lookup failure becomes a ProtocolError naming the field ---------------


def _get(obj: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise ProtocolError(f"missing field {where}{key}") from None


def _str(obj: Mapping[str, Any], key: str, where: str = "") -> str:
    value = _get(obj, key, where)
    if not isinstance(value, str):
        raise ProtocolError(f"{where}{key} must be a string, got {type(value).__name__}")
    return value


def _obj(obj: Mapping[str, Any], key: str, where: str = "") -> dict[str, Any]:
    value = _get(obj, key, where)
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}{key} must be an object, got {type(value).__name__}")
    return value


def _int(obj: Mapping[str, Any], key: str, where: str = "") -> int:
    """A non-negative integer; Twilio sends counters as decimal strings, numbers as numbers."""
    value = _get(obj, key, where)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if (
        isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) <= _MAX_COUNTER_DIGITS
    ):
        return int(value)
    raise ProtocolError(f"{where}{key} must be a non-negative integer, got {value!r:.40}")


def _b64(value: str, where: str) -> bytes:
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise ProtocolError(f"{where} is not valid base64") from None


# --- inbound: what Twilio sends ------------------------------------------------------------


def _parse_connected(msg: dict[str, Any]) -> Connected:
    return Connected(protocol=_str(msg, "protocol"), version=_str(msg, "version"))


def _parse_start(msg: dict[str, Any]) -> Start:
    start = _obj(msg, "start")
    fmt = _obj(start, "mediaFormat", "start.")
    tracks = _get(start, "tracks", "start.")
    if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
        raise ProtocolError("start.tracks must be a list of strings")
    params = start.get("customParameters", {})
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise ProtocolError("start.customParameters must be an object of strings")
    event = Start(
        stream_sid=_str(start, "streamSid", "start."),
        call_sid=_str(start, "callSid", "start."),
        account_sid=_str(start, "accountSid", "start."),
        tracks=tuple(tracks),
        encoding=_str(fmt, "encoding", "start.mediaFormat."),
        sample_rate=_int(fmt, "sampleRate", "start.mediaFormat."),
        channels=_int(fmt, "channels", "start.mediaFormat."),
        custom_parameters=MappingProxyType(params),
    )
    fmt_seen = (event.encoding, event.sample_rate, event.channels)
    if fmt_seen != (_ENCODING, _SAMPLE_RATE, _CHANNELS):
        raise ProtocolError(f"unsupported media format {fmt_seen}, expected μ-law/8000/mono")
    return event


def _parse_media(msg: dict[str, Any]) -> Media:
    media = _obj(msg, "media")
    payload = _b64(_str(media, "payload", "media."), "media.payload")
    if (size := len(payload)) > MAX_MEDIA_PAYLOAD_BYTES:
        raise ProtocolError(
            f"media.payload of {size} bytes exceeds {MAX_MEDIA_PAYLOAD_BYTES} (1 s of audio)"
        )
    return Media(
        track=_str(media, "track", "media."),
        chunk=_int(media, "chunk", "media."),
        timestamp=_int(media, "timestamp", "media."),
        payload=payload,
    )


def _parse_dtmf(msg: dict[str, Any]) -> Dtmf:
    return Dtmf(digit=_str(_obj(msg, "dtmf"), "digit", "dtmf."))


def _parse_mark(msg: dict[str, Any]) -> Mark:
    return Mark(name=_str(_obj(msg, "mark"), "name", "mark."))


def _parse_stop(msg: dict[str, Any]) -> Stop:
    stop = _obj(msg, "stop")
    return Stop(
        call_sid=_str(stop, "callSid", "stop."), account_sid=_str(stop, "accountSid", "stop.")
    )


_PARSERS: dict[str, Callable[[dict[str, Any]], Event]] = {
    "media": _parse_media,  # first: ~50 per second per call
    "mark": _parse_mark,
    "dtmf": _parse_dtmf,
    "start": _parse_start,
    "connected": _parse_connected,
    "stop": _parse_stop,
}


def _load_object(text: str | bytes) -> dict[str, Any]:
    if len(text) > MAX_FRAME_CHARS:
        raise ProtocolError(f"frame of {len(text)} characters exceeds {MAX_FRAME_CHARS}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("binary frame is not UTF-8 text") from None
    try:
        msg = orjson.loads(text)
    except orjson.JSONDecodeError:  # also for nesting deeper than orjson's limit
        raise ProtocolError("frame is not valid JSON") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"frame must be a JSON object, got {type(msg).__name__}")
    return msg


def parse_event(text: str | bytes) -> Event:
    """Parse one inbound frame from Twilio (twilio.md §2) into an event.

    Bytes are accepted only when they are UTF-8 text. `sequenceNumber` and the top-level
    `streamSid` are diagnostics and are not checked. Raises `ProtocolError` for anything else.
    """
    msg = _load_object(text)
    name = msg.get("event")
    if not isinstance(name, str):
        raise ProtocolError("missing or non-string field event")
    parser = _PARSERS.get(name)
    if parser is None:
        raise ProtocolError(f"unknown event {name!r:.40}")
    return parser(msg)


# --- outbound: what the server sends (twilio.md §3, exact shapes, no extra fields) --------------


def _dumps(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def build_media(stream_sid: str, ulaw: bytes) -> str:
    payload = _b64encode(ulaw)
    return _dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def build_mark(stream_sid: str, name: str) -> str:
    return _dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def build_clear(stream_sid: str) -> str:
    return _dumps({"event": "clear", "streamSid": stream_sid})


def _exact_keys(obj: dict[str, Any], keys: set[str], where: str) -> None:
    if obj.keys() != keys:
        raise ProtocolError(f"{where} must have exactly the fields {sorted(keys)}")


def parse_outbound(text: str) -> OutboundMedia | OutboundMark | Clear:
    """Parse a frame the server sent, as Twilio would: text, exact fields, a streamSid."""
    if not isinstance(text, str):
        raise ProtocolError("outbound frames must be text, not binary")  # Twilio error 31950
    msg = _load_object(text)
    name = msg.get("event")
    if name == "media":
        _exact_keys(msg, {"event", "streamSid", "media"}, "media message")
        media = _obj(msg, "media")
        _exact_keys(media, {"payload"}, "media")
        event: OutboundMedia | OutboundMark | Clear = OutboundMedia(
            _b64(_str(media, "payload", "media."), "media.payload")
        )
    elif name == "mark":
        _exact_keys(msg, {"event", "streamSid", "mark"}, "mark message")
        mark = _obj(msg, "mark")
        _exact_keys(mark, {"name"}, "mark")
        event = OutboundMark(_str(mark, "name", "mark."))
    elif name == "clear":
        _exact_keys(msg, {"event", "streamSid"}, "clear message")
        event = Clear()
    else:
        raise ProtocolError(f"unknown outbound event {name!r:.40}")
    _str(msg, "streamSid")
    return event


# --- inbound builders: what Twilio sends, for the simulator and tests ---------------------------


def build_connected() -> str:
    return _dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def _envelope(event: str, sequence_number: int, stream_sid: str) -> dict[str, Any]:
    return {"event": event, "sequenceNumber": str(sequence_number), "streamSid": stream_sid}


def build_start(sequence_number: int, start: Start) -> str:
    msg = _envelope("start", sequence_number, start.stream_sid)
    msg["start"] = {
        "streamSid": start.stream_sid,
        "accountSid": start.account_sid,
        "callSid": start.call_sid,
        "tracks": list(start.tracks),
        "mediaFormat": {
            "encoding": start.encoding,
            "sampleRate": start.sample_rate,
            "channels": start.channels,
        },
        "customParameters": dict(start.custom_parameters),
    }
    return _dumps(msg)


def build_inbound_media(
    sequence_number: int, stream_sid: str, chunk: int, timestamp: int, payload: bytes
) -> str:
    msg = _envelope("media", sequence_number, stream_sid)
    msg["media"] = {
        "track": "inbound",
        "chunk": str(chunk),
        "timestamp": str(timestamp),
        "payload": _b64encode(payload),
    }
    return _dumps(msg)


def build_dtmf(sequence_number: int, stream_sid: str, digit: str) -> str:
    msg = _envelope("dtmf", sequence_number, stream_sid)
    msg["dtmf"] = {"track": "inbound_track", "digit": digit}
    return _dumps(msg)


def build_mark_echo(sequence_number: int, stream_sid: str, name: str) -> str:
    msg = _envelope("mark", sequence_number, stream_sid)
    msg["mark"] = {"name": name}
    return _dumps(msg)


def build_stop(sequence_number: int, stream_sid: str, call_sid: str, account_sid: str) -> str:
    msg = _envelope("stop", sequence_number, stream_sid)
    msg["stop"] = {"accountSid": account_sid, "callSid": call_sid}
    return _dumps(msg)
