"""Process metrics for Prometheus (served at GET /metrics by `voice_server.app`).

Counted once per event that matters to an operator (a call, a turn, a dropped frame), never per
audio frame. The gauges of `read_at_scrape` are not counted but read, when /metrics is served;
the process collector of prometheus-client already gives the process's memory and open files.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge, Histogram

CALLS = Counter("voice_calls_total", "Incoming calls answered, by outcome", ["outcome"])
ACTIVE_CALLS = Gauge("voice_calls_active", "Media streams currently in a call")
MALFORMED_FRAMES = Counter("voice_stream_malformed_frames_total", "Media-stream frames dropped")
TURN_LATENCY = Histogram(
    "voice_turn_first_audio_seconds",
    "The caller's end of speech (the last voiced frame above the line's noise floor) to the "
    "agent's first audio frame",
    buckets=(0.3, 0.5, 0.7, 0.9, 1.2, 1.5, 2.0, 3.0, 5.0),
)
OUTBOUND_DIALS = Counter(
    "voice_outbound_dials_total",
    "Destinations of scheduled calls: dialled, not dialled (Twilio refused), or never dialled "
    "(the scheduled call could not be placed)",
    ["result"],
)
OUTBOUND_DIAL_DELAY = Histogram(
    "voice_outbound_dial_delay_seconds",
    "From a destination's scheduledDateTime to the end of its dialling (Twilio's answer)",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
BARGE_INS = Counter("voice_barge_ins_total", "Times a caller interrupted the agent")
TRANSCRIPT_LOSSES = Counter(
    "voice_transcript_entries_unstored_total",
    "Transcript entries that could not be stored after retrying (logged in full instead)",
)
EVENT_LOOP_TASKS = Gauge(
    "voice_event_loop_tasks",
    "asyncio tasks alive in the server's event loop (a count that grows call after call is a leak)",
)


def read_at_scrape() -> None:
    """Set the gauges that are read rather than counted. Call it on the event loop."""
    EVENT_LOOP_TASKS.set(len(asyncio.all_tasks()))
