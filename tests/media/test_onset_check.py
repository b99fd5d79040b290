"""The second opinion on onsets: speech is confirmed soon after it starts, a cough never."""

import pytest

from media.codec import FRAME_BYTES, PCM_FRAME_BYTES, ulaw_to_pcm16
from media.onset_check import OnsetCheck
from tests.voice_server.call.harness import speech
from voice_server.simulation.caller_script import cough

ONSET_MS = 120  # where the endpointer reports a start with the default `minSpeechMs`


def _frames(ulaw: bytes) -> list[bytes]:
    pcm = ulaw_to_pcm16(ulaw)
    return [pcm[i : i + PCM_FRAME_BYTES] for i in range(0, len(pcm), PCM_FRAME_BYTES)]


def _confirmed_after_ms(check: OnsetCheck, ulaw: bytes) -> float | None:
    """Play a sound from its first frame, begin the check at the onset; when speech was
    confirmed, in ms from the sound's start (None: never)."""
    frames = _frames(ulaw)
    onset = ONSET_MS // 20
    for frame in frames[:onset]:
        check.hear(frame)
    if check.begin(ONSET_MS):
        return ONSET_MS
    for n, frame in enumerate(frames[onset:], start=onset + 1):
        if check.hear(frame):
            return n * 20
    check.end()
    return None


@pytest.mark.parametrize(
    "text", ["Stop. What time do you close?", "What are your opening hours?", "Wait.", "No."]
)
async def test_speech_is_confirmed_within_200_ms_of_its_start(text: str) -> None:
    voice = (await speech([text]))[text]
    confirmed = _confirmed_after_ms(OnsetCheck(), voice)
    assert confirmed is not None
    assert confirmed <= 200


@pytest.mark.parametrize("ms", [250, 400, 1000])
def test_a_cough_is_never_speech(ms: float) -> None:
    assert _confirmed_after_ms(OnsetCheck(), cough(ms)) is None


def test_a_long_noise_stops_being_checked() -> None:
    check = OnsetCheck(max_ms=600)
    frames = _frames(cough(2000, seed=3))
    for frame in frames[:6]:
        check.hear(frame)
    assert not check.begin(ONSET_MS)
    heard = 6
    while check.checking:
        assert not check.hear(frames[heard])
        heard += 1
    assert (heard - 6) * 20 + ONSET_MS == 600  # the onset and what followed it


async def test_each_check_starts_afresh() -> None:
    """A pooled detector keeps no state from the speech it last confirmed."""
    voice = (await speech(["What are your opening hours?"]))["What are your opening hours?"]
    first = OnsetCheck()
    assert _confirmed_after_ms(first, voice) is not None
    assert _confirmed_after_ms(OnsetCheck(), cough(400)) is None
    assert _confirmed_after_ms(first, b"\xff" * FRAME_BYTES * 10 + voice) is not None
