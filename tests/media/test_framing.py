import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.codec import FRAME_BYTES
from media.framing import Framer


def test_whole_frames_and_remainder() -> None:
    framer = Framer()
    assert framer.push(b"a" * 100) == []
    frames = framer.push(b"b" * 300)
    assert frames == [b"a" * 100 + b"b" * 60, b"b" * 160]
    assert framer.pending == 80
    tail = framer.flush()
    assert tail == b"b" * 80 + b"\xff" * 80
    assert framer.flush() is None


def test_a_whole_frame_with_nothing_pending_passes_as_it_is() -> None:
    framer = Framer()
    frame = bytes(range(FRAME_BYTES))
    assert framer.push(frame)[0] is frame
    framer.push(b"x")
    assert framer.push(frame) == [b"x" + frame[:-1]]
    assert framer.pending == 1


def test_flush_with_custom_pad_and_empty() -> None:
    framer = Framer(4)
    assert framer.flush() is None
    framer.push(b"x")
    assert framer.flush(pad=b"\x00") == b"x\x00\x00\x00"
    framer.push(b"x")
    with pytest.raises(ValueError, match="single byte"):
        framer.flush(pad=b"ab")


def test_bad_frame_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        Framer(0)


@given(st.lists(st.binary(max_size=500), max_size=30))
def test_frames_reassemble_the_stream(chunks: list[bytes]) -> None:
    framer = Framer()
    frames = [frame for chunk in chunks for frame in framer.push(chunk)]
    stream = b"".join(chunks)
    tail = framer.flush()
    assert all(len(frame) == FRAME_BYTES for frame in frames)
    assert b"".join(frames) == stream[: len(stream) - len(stream) % FRAME_BYTES]
    if len(stream) % FRAME_BYTES:
        assert tail is not None
        assert len(tail) == FRAME_BYTES
        assert tail.startswith(stream[len(b"".join(frames)) :])
    else:
        assert tail is None
