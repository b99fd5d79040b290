"""Cut any byte stream into exact fixed-size frames, keeping the remainder.

Outbound audio should go to Twilio in whole 20 ms frames (multiples of 160 μ-law bytes):
tiny, frame-misaligned messages are reported to stutter (twilio.md "Buffering, pacing and marks").
Inbound, the VAD takes exactly 20 ms at a time, whatever size Twilio's payloads have.
"""

from __future__ import annotations

from media.codec import FRAME_BYTES, ULAW_SILENCE


class Framer:
    """Accumulate bytes and hand them out in frames of exactly `frame_bytes`."""

    __slots__ = ("_buffer", "_frame_bytes")

    def __init__(self, frame_bytes: int = FRAME_BYTES) -> None:
        if frame_bytes <= 0:
            raise ValueError(f"frame_bytes must be positive, got {frame_bytes}")
        self._frame_bytes = frame_bytes
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back, waiting for a whole frame."""
        return len(self._buffer)

    def push(self, data: bytes) -> list[bytes]:
        """Add `data`; return every whole frame now available, in order."""
        buffer = self._buffer
        size = self._frame_bytes
        if not buffer and len(data) == size:
            return [data]  # the usual case: a whole frame, passed on without a copy
        buffer += data
        whole = len(buffer) - len(buffer) % size
        if whole == 0:
            return []
        frames = [bytes(buffer[i : i + size]) for i in range(0, whole, size)]
        del buffer[:whole]
        return frames

    def flush(self, pad: bytes = ULAW_SILENCE) -> bytes | None:
        """Return the remainder padded with `pad` to one whole frame, or None if empty."""
        if not self._buffer:
            return None
        if len(pad) != 1:
            raise ValueError(f"pad must be a single byte, got {len(pad)} bytes")
        frame = bytes(self._buffer).ljust(self._frame_bytes, pad)
        self._buffer.clear()
        return frame
