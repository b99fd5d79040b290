"""parse_wav_header on real espeak-ng output and on wav_bytes(); None until complete; WavError."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import wave

import pytest

from media.wav import WavError, WavFormat, parse_wav_header, wav_bytes


@pytest.fixture(scope="module")
def espeak_wav() -> bytes:
    executable = shutil.which("espeak-ng")
    assert executable is not None, "espeak-ng is needed (scripts/setup installs it)"
    result = subprocess.run(
        [executable, "--stdout", "-v", "en-us", "Testing one two three."],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def test_espeak_stream_header(espeak_wav: bytes) -> None:
    fmt = parse_wav_header(espeak_wav)

    assert fmt is not None
    assert (fmt.sample_rate, fmt.channels) == (22_050, 1)
    assert espeak_wav[fmt.data_offset - 8 : fmt.data_offset - 4] == b"data"
    assert len(espeak_wav) - fmt.data_offset > 22_050  # over half a second of samples follows


def test_espeak_header_prefixes_need_more_bytes(espeak_wav: bytes) -> None:
    fmt = parse_wav_header(espeak_wav)
    assert fmt is not None
    for end in range(fmt.data_offset):
        assert parse_wav_header(espeak_wav[:end]) is None, end


def test_wav_bytes_header_round_trip() -> None:
    pcm = bytes(range(256)) * 10
    data = wav_bytes(pcm, 16_000, channels=2)

    fmt = parse_wav_header(data)

    assert fmt == WavFormat(sample_rate=16_000, channels=2, data_offset=44)
    assert data[fmt.data_offset :] == pcm


def test_wav_bytes_reads_back_with_the_wave_module() -> None:
    pcm = b"\x01\x00\xff\x7f\x00\x80" * 100
    with wave.open(io.BytesIO(wav_bytes(pcm, 8000))) as read:
        assert (read.getnchannels(), read.getsampwidth(), read.getframerate()) == (1, 2, 8000)
        assert read.readframes(read.getnframes()) == pcm


@pytest.mark.parametrize("length", [0, 4, 11, 12, 19, 20, 35, 36, 43])
def test_truncated_header_returns_none(length: int) -> None:
    assert parse_wav_header(wav_bytes(b"\x00\x00" * 100, 8000)[:length]) is None


def test_header_with_an_empty_data_chunk_is_complete() -> None:
    assert parse_wav_header(wav_bytes(b"", 24_000)) == WavFormat(24_000, 1, 44)


def test_chunks_before_data_are_skipped_including_odd_padding() -> None:
    plain = wav_bytes(b"\x10\x00" * 50, 8000)
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde" + b"\x00"  # odd size: one pad byte
    data = plain[:36] + extra + plain[36:]

    fmt = parse_wav_header(data)

    assert fmt == WavFormat(sample_rate=8000, channels=1, data_offset=44 + len(extra))
    assert data[fmt.data_offset :] == b"\x10\x00" * 50


@pytest.mark.parametrize(
    "data",
    [
        b"OggS" + b"\x00" * 60,
        b"RIFF\x24\x00\x00\x00AVI LIST" + b"\x00" * 40,
        b"ID3\x04" + b"\x00" * 60,
    ],
)
def test_non_wav_raises_wav_error(data: bytes) -> None:
    with pytest.raises(WavError, match="not a RIFF/WAVE stream"):
        parse_wav_header(data)


def test_8_bit_wav_raises_wav_error() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(b"\x80" * 100)

    with pytest.raises(WavError, match="8 bits per sample"):
        parse_wav_header(buffer.getvalue())


def test_non_pcm_wav_raises_wav_error() -> None:
    data = bytearray(wav_bytes(b"\x00\x00" * 10, 8000))
    data[20:22] = struct.pack("<H", 7)  # format tag 7: μ-law

    with pytest.raises(WavError, match="format tag 7"):
        parse_wav_header(bytes(data))


def test_data_before_fmt_raises_wav_error() -> None:
    data = b"RIFF\x00\x00\x00\x00WAVE" + b"data" + struct.pack("<I", 4) + b"\x00" * 4

    with pytest.raises(WavError, match="data chunk before fmt chunk"):
        parse_wav_header(data)


def test_short_fmt_chunk_raises_wav_error() -> None:
    data = b"RIFF\x00\x00\x00\x00WAVE" + b"fmt " + struct.pack("<I", 8) + b"\x01\x00" * 4

    with pytest.raises(WavError, match="fmt chunk too short"):
        parse_wav_header(data + b"data\x00\x00\x00\x00")
