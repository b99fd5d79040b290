"""μ-law ⇄ PCM16 conversion and the telephony audio constants.

Twilio Media Streams carry G.711 μ-law, 8000 Hz, mono, in 20 ms frames of 160 bytes
(twilio.md §2). PCM16 here is always signed 16-bit little-endian, mono.
"""

from __future__ import annotations

import audioop

SAMPLE_RATE = 8000
"""Hz, the only rate Media Streams carry."""
FRAME_MS = 20
"""Duration of one inbound media message."""
FRAME_BYTES = SAMPLE_RATE * FRAME_MS // 1000
"""μ-law bytes per 20 ms frame (one byte per sample): 160."""
PCM_FRAME_BYTES = FRAME_BYTES * 2
"""PCM16 bytes per 20 ms frame: 320."""
ULAW_SILENCE = b"\xff"
"""μ-law silence; 0x00 decodes to -32124, a loud click (twilio.md "Audio conversion")."""

_PCM_WIDTH = 2


def ulaw_to_pcm16(data: bytes) -> bytes:
    """Decode μ-law bytes to PCM16 (two bytes per input byte)."""
    return audioop.ulaw2lin(data, _PCM_WIDTH)


def pcm16_to_ulaw(data: bytes) -> bytes:
    """Encode PCM16 to μ-law (one byte per sample). Raises ValueError on an odd length."""
    if len(data) % _PCM_WIDTH:
        raise ValueError(f"PCM16 data must have an even length, got {len(data)} bytes")
    return audioop.lin2ulaw(data, _PCM_WIDTH)


def ulaw_duration_ms(n_bytes: int) -> float:
    """Playback time of `n_bytes` of μ-law at 8 kHz, in milliseconds."""
    return n_bytes * 1000.0 / SAMPLE_RATE
