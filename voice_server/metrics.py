"""Process metrics for Prometheus (served at GET /metrics by `voice_server.app`).

Counted once per event that matters to an operator (a call, a turn, a dropped frame), never per
audio frame.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS = Counter("voice_calls_total", "Incoming calls answered, by outcome", ["outcome"])
ACTIVE_CALLS = Gauge("voice_calls_active", "Media streams currently in a call")
MALFORMED_FRAMES = Counter("voice_stream_malformed_frames_total", "Media-stream frames dropped")
TURN_LATENCY = Histogram(
    "voice_turn_first_audio_seconds",
    "Caller's last speech frame to the agent's first audio frame",
    buckets=(0.3, 0.5, 0.7, 0.9, 1.2, 1.5, 2.0, 3.0, 5.0),
)
BARGE_INS = Counter("voice_barge_ins_total", "Times a caller interrupted the agent")
TRANSCRIPT_LOSSES = Counter(
    "voice_transcript_entries_unstored_total",
    "Transcript entries that could not be stored after retrying (logged in full instead)",
)
