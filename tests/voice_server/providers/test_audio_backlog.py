"""The bounded backlog between a recognition session's `push_audio` and its worker."""

from __future__ import annotations

import pytest

from media.codec import FRAME_BYTES
from tests.voice_server.conftest import logged
from voice_server.providers.audio_backlog import AudioBacklog


def frames(count: int, fill: int = 1) -> list[bytes]:
    return [bytes([fill]) * FRAME_BYTES] * count


async def test_audio_comes_out_joined_up_to_each_utterance_end() -> None:
    backlog = AudioBacklog(1000, recogniser="test")
    backlog.put_audio(b"ab")
    backlog.put_audio(b"cd")
    backlog.put_end()
    backlog.put_audio(b"ef")

    assert [await backlog.take(), await backlog.take(), await backlog.take()] == [
        b"abcd",
        None,
        b"ef",
    ]


async def test_a_burst_beyond_the_limit_drops_the_newest_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backlog = AudioBacklog(100, recogniser="test")  # five 20 ms frames
    for frame in frames(5, 1) + frames(5_000, 2):
        backlog.put_audio(frame)
    backlog.put_end()  # an utterance end is never dropped

    assert await backlog.take() == b"".join(frames(5, 1))
    assert await backlog.take() is None
    warnings = logged(caplog, "dropping caller audio")
    assert [(w["level"], w["backlog_ms"]) for w in warnings] == [("warning", 100)]
    assert len(caplog.records) == 1


async def test_an_episode_ends_once_a_whole_backlog_was_kept_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backlog = AudioBacklog(100, recogniser="test")
    for _ in range(3):  # a burst arriving over several reads, drained in between
        for frame in frames(8):
            backlog.put_audio(frame)
        await backlog.take()
    for frame in frames(6):  # real time again: every frame is taken as it comes
        backlog.put_audio(frame)
        await backlog.take()

    assert len(logged(caplog, "dropping caller audio")) == 1
    caught_up = logged(caplog, "recognition caught up")
    assert [(entry["level"], entry["dropped_ms"]) for entry in caught_up] == [("info", 180)]


def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        AudioBacklog(0, recogniser="test")
