"""Streaming PCM16 resampling with state kept across chunks.

TTS audio arrives in arbitrary chunks at its own rate (often 24 kHz) and must become 8 kHz
before μ-law encoding. Resetting the filter per chunk clicks, and a chunk may end mid-sample,
so the resampler keeps both the soxr stream state and an odd trailing byte (twilio.md
"Audio conversion").
"""

from __future__ import annotations

import numpy as np
import soxr


class Resampler:
    """Convert a stream of mono PCM16 from `in_rate` to `out_rate` (Hz).

    Call `process()` for each chunk and `flush()` once at the end of the stream; after
    `flush()` the resampler starts a fresh stream. The filter is made on the first chunk of a
    stream (making one costs some 30 µs: a resampler flushed and dropped, one per TTS sentence,
    makes no second one).
    """

    __slots__ = ("_carry", "_in_rate", "_out_rate", "_stream")

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} → {out_rate}")
        self._in_rate = in_rate
        self._out_rate = out_rate
        self._carry = b""
        self._stream: soxr.ResampleStream | None = None

    def process(self, pcm16: bytes) -> bytes:
        """Resample one chunk; returns whatever output is ready (possibly empty)."""
        data = self._carry + pcm16 if self._carry else pcm16
        whole = len(data) & ~1
        self._carry = data[whole:]
        if self._in_rate == self._out_rate:
            return data[:whole]
        if whole == 0:
            return b""
        if self._stream is None:
            self._stream = soxr.ResampleStream(self._in_rate, self._out_rate, 1, dtype="int16")
        samples = np.frombuffer(data, dtype=np.int16, count=whole // 2)
        out: np.ndarray = self._stream.resample_chunk(samples)
        return out.tobytes()

    def flush(self) -> bytes:
        """Drain the filter at the end of a stream. A dangling odd byte is dropped."""
        self._carry = b""
        stream, self._stream = self._stream, None
        if stream is None:
            return b""
        out: np.ndarray = stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        return out.tobytes()
