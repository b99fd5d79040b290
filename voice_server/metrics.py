"""Process metrics for Prometheus (served at GET /metrics by `voice_server.app`).

Counted once per event that matters to an operator (a call, a turn, a dropped frame), never per
audio frame. The gauges of `read_gauges` are not counted but read, when /metrics is served and
at each heartbeat round; the process collector of prometheus-client already gives the process's
memory and open files.

With `serve --workers N` (N > 1), each worker writes its figures to a folder the workers share
(prometheus-client's multiprocess mode, `PROMETHEUS_MULTIPROC_DIR`) and whichever worker serves
/metrics reports them all: counters and histograms summed over every worker that ran (so they
never go back when a worker is replaced), `voice_calls_active` summed over the live workers,
`voice_event_loop_tasks` one series per live worker (label `pid`). The process collector's
figures (memory, CPU, open files) are per process and are not reported then.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from stores.shared_embedded import process_alive

CALLS = Counter("voice_calls_total", "Incoming calls answered, by outcome", ["outcome"])
ACTIVE_CALLS = Gauge(
    "voice_calls_active", "Media streams currently in a call", multiprocess_mode="livesum"
)
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
    multiprocess_mode="liveall",
)
# A live gauge's file in the shared folder: gauge_<mode>_<pid>.db (prometheus-client's naming).
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def read_gauges() -> None:
    """Set the gauges that are read rather than counted. Call it on the event loop."""
    EVENT_LOOP_TASKS.set(len(asyncio.all_tasks()))


def exposition(shared_folder: Path | None) -> bytes:
    """What /metrics shows: this process's metrics or, given the workers' `shared_folder`,
    every worker's."""
    read_gauges()
    if shared_folder is None:
        return generate_latest()
    _forget_gone_workers(shared_folder)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(shared_folder))  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def _forget_gone_workers(shared_folder: Path) -> None:
    """Drop the live gauges of workers that have exited (a killed one could not do it itself;
    uvicorn's supervisor replaces it without telling anyone)."""
    for path in shared_folder.iterdir():
        found = _LIVE_GAUGE_FILE.fullmatch(path.name)
        if found and not process_alive(int(found.group(1))):
            mark_process_dead(int(found.group(1)), str(shared_folder))  # type: ignore[no-untyped-call]
