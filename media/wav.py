"""RIFF/WAVE headers: find the PCM format and where the samples start in a WAV byte stream.

Streaming producers (espeak-ng `--stdout`) write a header whose sizes are placeholders, so only
the chunk layout is trusted, never the declared lengths, and never a fixed 44-byte header.
"""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass

_PCM = 1
_EXTENSIBLE = 0xFFFE


class WavError(ValueError):
    """The bytes are not a PCM16 WAV stream."""


@dataclass(frozen=True, slots=True)
class WavFormat:
    sample_rate: int
    channels: int
    data_offset: int


def parse_wav_header(data: bytes) -> WavFormat | None:
    """Return the format once `data` holds the whole header, None while more bytes are needed."""
    if len(data) < 12:
        return None
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not a RIFF/WAVE stream")
    offset, fmt = 12, None
    while len(data) >= offset + 8:
        chunk_id, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        body = offset + 8
        if chunk_id == b"data":
            if fmt is None:
                raise WavError("data chunk before fmt chunk")
            return WavFormat(sample_rate=fmt[1], channels=fmt[0], data_offset=body)
        if len(data) < body + size:
            return None
        if chunk_id == b"fmt ":
            fmt = _read_fmt(data[body : body + size])
        offset = body + size + (size & 1)
    return None


def _read_fmt(body: bytes) -> tuple[int, int]:
    if len(body) < 16:
        raise WavError("fmt chunk too short")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
    if tag not in (_PCM, _EXTENSIBLE) or bits != 16:
        raise WavError(f"unsupported WAV encoding: format tag {tag}, {bits} bits per sample")
    return channels, rate


def wav_bytes(pcm16: bytes, sample_rate: int, channels: int = 1) -> bytes:
    """A complete WAV file holding `pcm16` (16-bit little-endian samples)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm16)
    return buffer.getvalue()
