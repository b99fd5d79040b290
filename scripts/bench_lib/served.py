"""`voice-server serve`, with an event-loop lag probe in the server's own loop.

The probe is a timer due every `INTERVAL_S`; how late it fires is how long the loop was busy
with other work (a stalled loop delays every call at once). Each second one JSON line goes to
`BENCH_LAG_FILE`: the worst lag, the count of lags over 20 ms and over 50 ms, and the probe's
samples. With `BENCH_SLOW_CALLBACK_MS` set, the server runs on the standard library's loop in
asyncio debug mode instead, which logs every callback slower than that ("Executing … took …";
uvloop keeps the setting but never logs) and costs CPU: a separate check.

    BENCH_LAG_FILE=lag.jsonl python -m bench_lib.served   # then as `voice-server serve --workers 1`
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from functools import partial
from typing import IO, cast

import uvloop

from voice_server.cli import main as voice_server_main

INTERVAL_S = 0.010


class LagProbe:
    """Measures the loop's lateness from inside it; writes one line a second."""

    def __init__(self, loop: asyncio.AbstractEventLoop, out: IO[str]) -> None:
        self._loop = loop
        self._out = out
        self._due = time.monotonic() + INTERVAL_S
        self._window_end = time.monotonic() + 1.0
        self._worst = 0.0
        self._over = {20: 0, 50: 0}
        self._samples = 0

    def start(self) -> None:
        self._loop.call_later(INTERVAL_S, self._fire)

    def _fire(self) -> None:
        now = time.monotonic()
        lag_ms = max(0.0, (now - self._due) * 1000)
        self._worst = max(self._worst, lag_ms)
        self._samples += 1
        for limit in self._over:
            self._over[limit] += lag_ms > limit
        if now >= self._window_end:
            self._flush(now)
        self._due = now + INTERVAL_S
        self._loop.call_later(INTERVAL_S, self._fire)

    def _flush(self, now: float) -> None:
        line = {
            "t": now,
            "max_ms": round(self._worst, 2),
            "over_20ms": self._over[20],
            "over_50ms": self._over[50],
            "samples": self._samples,
        }
        self._out.write(json.dumps(line) + "\n")
        self._out.flush()
        self._window_end, self._worst, self._samples = now + 1.0, 0.0, 0
        self._over = dict.fromkeys(self._over, 0)


class _DebugLoop(asyncio.SelectorEventLoop):
    """Stays in debug mode: uvicorn's runner sets `debug=False` on the loop it was given."""

    def set_debug(self, enabled: bool) -> None:
        super().set_debug(True)


def _probed_loop_factory(lag_file: str, slow_ms: str | None) -> asyncio.AbstractEventLoop:
    loop = _DebugLoop() if slow_ms else _new_event_loop()
    if slow_ms:
        loop.set_debug(True)
        loop.slow_callback_duration = float(slow_ms) / 1000
    out = open(lag_file, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life
    LagProbe(loop, out).start()
    return loop


_new_event_loop = uvloop.new_event_loop


def main() -> int:
    lag_file = os.environ["BENCH_LAG_FILE"]
    slow_ms = os.environ.get("BENCH_SLOW_CALLBACK_MS")
    # uvicorn's `--loop uvloop` asks `uvloop.new_event_loop` for the loop, at start-up.
    factory = partial(_probed_loop_factory, lag_file, slow_ms)
    uvloop.new_event_loop = cast(Callable[[], uvloop.Loop], factory)
    # One process: the bench starts as many as it measures, each with its own probe.
    return voice_server_main(["serve", "--workers", "1"])


if __name__ == "__main__":
    raise SystemExit(main())
