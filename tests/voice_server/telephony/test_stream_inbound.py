"""The stream's frames as the call's `EventFeed` (`media_stream.Inbound`): handed over as they
arrive by a socket that pushes them, read by the call's task from one that does not. The
whole path runs in `test_stream.py` and `test_stream_socket.py`; here, what only a broken call
or a broken peer shows."""

from __future__ import annotations

import pytest
from starlette.types import Message

from media import twilio as protocol
from media.codec import FRAME_BYTES, ULAW_SILENCE
from media.twilio import Event, Media, Stop
from tests.voice_server.conftest import logged
from voice_server.call.end_reasons import EndReason
from voice_server.telephony.media_stream import MAX_BAD_FRAMES, FrameSink, Inbound

SID = "MZ" + "0" * 32


def media(chunk: int) -> bytes:
    frame = protocol.build_inbound_media(chunk, SID, chunk, chunk * 20, ULAW_SILENCE * FRAME_BYTES)
    return frame.encode()


STOP = protocol.build_stop(99, SID, "CA" + "0" * 32, "AC" + "0" * 32).encode()


class ReadSocket:
    """A `StreamSocket` that can only be read: it gives the messages it was made with."""

    def __init__(self, read: list[Message] | None = None) -> None:
        self._read = read or []

    async def accept(self) -> None:
        """Nothing to accept."""

    async def receive(self) -> Message:
        return self._read.pop(0)

    async def send_text(self, data: str) -> None:
        """Nothing is sent here."""

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Nothing to close."""


class PushingSocket(ReadSocket):
    """A `FramePusher`: the test hands its frames to the sink it was given."""

    sink: FrameSink | None = None

    def push_to(self, sink: FrameSink) -> None:
        self.sink = sink


class Call:
    """What the session sees of the feed."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.events: list[Event] = []
        self.ends = 0
        self._fail_on = fail_on

    def on_event(self, event: Event) -> None:
        if len(self.events) == self._fail_on:
            raise ValueError("a bug in the call")
        self.events.append(event)

    def on_end(self) -> None:
        self.ends += 1


def pushed(call: Call) -> tuple[Inbound, FrameSink]:
    socket = PushingSocket()
    inbound = Inbound(socket)
    assert inbound.start(call.on_event, call.on_end) is None  # nothing for the call to read
    assert socket.sink is inbound
    return inbound, socket.sink


def test_pushed_frames_reach_the_call_in_order_and_the_end_once() -> None:
    call = Call()
    inbound, sink = pushed(call)
    for chunk in (1, 2, 3):
        sink.frame(media(chunk))
    sink.frame(STOP)
    sink.closed(1000)
    sink.frame(media(4))  # after the end: not the call's any more
    assert [type(event) for event in call.events] == [Media, Media, Media, Stop]
    assert [event.chunk for event in call.events if isinstance(event, Media)] == [1, 2, 3]
    assert call.ends == 1
    assert inbound.peer_close_code == 1000


def test_a_call_that_fails_on_an_event_ends_and_hears_nothing_more(
    caplog: pytest.LogCaptureFixture,
) -> None:
    call = Call(fail_on=2)
    inbound, sink = pushed(call)
    for chunk in (1, 2, 3, 4):
        sink.frame(media(chunk))
    sink.closed(1000)
    assert len(call.events) == 2
    assert call.ends == 1
    assert inbound.failed
    [failure] = [r for r in caplog.records if "call session failed" in str(r.msg)]
    assert failure.exc_info is not None
    assert isinstance(failure.exc_info[1], ValueError)


def test_a_peer_sending_garbage_is_refused_and_the_call_ended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    call = Call()
    inbound, sink = pushed(call)
    sink.frame(media(1))
    for _ in range(MAX_BAD_FRAMES):
        sink.frame(b"not json")
    sink.frame(media(2))
    assert len(call.events) == 1
    assert call.ends == 1
    assert inbound.refusal is EndReason.MALFORMED_FRAMES
    assert len(logged(caplog, "malformed media-stream frame dropped")) == MAX_BAD_FRAMES


async def test_a_socket_that_cannot_push_is_read_by_the_calls_task() -> None:
    socket = ReadSocket(
        [
            {"type": "websocket.receive", "bytes": media(1)},
            {"type": "websocket.receive", "text": "{"},  # malformed: dropped, the call goes on
            {"type": "websocket.receive", "text": media(2).decode()},
            {"type": "websocket.disconnect", "code": 1001},
        ]
    )
    call = Call()
    inbound = Inbound(socket)
    reading = inbound.start(call.on_event, call.on_end)
    assert reading is not None
    await reading
    assert [event.chunk for event in call.events if isinstance(event, Media)] == [1, 2]
    assert call.ends == 1
    assert inbound.peer_close_code == 1001
