import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.codec import (
    FRAME_BYTES,
    FRAME_MS,
    PCM_FRAME_BYTES,
    SAMPLE_RATE,
    ULAW_SILENCE,
    pcm16_to_ulaw,
    ulaw_duration_ms,
    ulaw_to_pcm16,
)


def test_constants_agree() -> None:
    assert SAMPLE_RATE * FRAME_MS // 1000 == FRAME_BYTES == 160
    assert PCM_FRAME_BYTES == 2 * FRAME_BYTES == 320


def test_silence_decodes_to_near_zero() -> None:
    pcm = ulaw_to_pcm16(ULAW_SILENCE * FRAME_BYTES)
    assert len(pcm) == PCM_FRAME_BYTES
    assert set(pcm) == {0}


def test_ulaw_duration() -> None:
    assert ulaw_duration_ms(FRAME_BYTES) == 20.0
    assert ulaw_duration_ms(8000) == 1000.0
    assert ulaw_duration_ms(0) == 0.0


def test_odd_pcm_is_rejected() -> None:
    with pytest.raises(ValueError, match="even length"):
        pcm16_to_ulaw(b"\x00\x00\x00")


@given(st.binary())
def test_ulaw_round_trip_is_identity_on_canonical_codes(ulaw: bytes) -> None:
    # 0x7F and 0xFF both mean zero; lin2ulaw picks 0xFF, so normalise before comparing.
    canonical = ulaw.replace(b"\x7f", b"\xff")
    assert pcm16_to_ulaw(ulaw_to_pcm16(ulaw)) == canonical


@given(st.lists(st.integers(-32768, 32767), max_size=200))
def test_pcm_round_trip_error_is_bounded(samples: list[int]) -> None:
    pcm = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
    back = ulaw_to_pcm16(pcm16_to_ulaw(pcm))
    decoded = [
        int.from_bytes(back[i : i + 2], "little", signed=True) for i in range(0, len(back), 2)
    ]
    for original, restored in zip(samples, decoded, strict=True):
        # μ-law keeps ~13 bits: the error grows with amplitude, at most ~1/16 of it.
        assert abs(original - restored) <= max(16, abs(original) // 16)
