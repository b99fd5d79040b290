"""The calls this server is holding, and how they end when it stops.

On SIGTERM or SIGINT the server drains (`voice_server.serving.DrainingServer`): `/ready` answers
503 at once so that a load balancer stops sending, webhooks still arriving are answered as
usual, and live calls go on for up to `DRAIN_SECONDS`. Each call still live then hears the
shutdown goodbye and ends as `server-shutdown`; a second signal ends them all at once. Either
way every call record is finalised (by its media-stream handler) before the process exits.

While they run, the calls are marked alive in the database every `HEARTBEAT_SECONDS` (a batch
of them at a time, spread over the interval), and every server sweeps for calls whose heartbeat
stopped: their server was killed or lost, or their media stream never started. Any number of
servers may sweep at once; the finalising update requires the heartbeat the sweeper saw, so each
lost call ends once.
"""

from __future__ import annotations

import asyncio
import itertools
import zlib
from contextlib import suppress
from datetime import timedelta
from typing import Protocol

from stores.calls import CallStore
from stores.documents import utc_now
from voice_server.call.end_reasons import EndReason
from voice_server.log import get_logger
from voice_server.metrics import read_gauges

log = get_logger(__name__)

_ENDING_S = 30.0  # a goodbye plays in a few seconds; a call not ended by then is ended at once

HEARTBEAT_BATCHES = 15
"""Each heartbeat interval marks the live calls in this many writes, spread over it: one write
for all of them rewrites every live call's document at once, which holds the database long
enough to delay the webhooks queued behind it (200 calls: 0.2 s on the embedded database,
`scripts/bench_webhook`)."""


class LiveCall(Protocol):
    """What the drain needs of a running call (`CallSession`)."""

    def shut_down(self, *, goodbye: bool) -> None: ...


class LiveCalls:
    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}
        self._changed = asyncio.Event()  # a call ended, or `hurry`
        self._hurried = False
        self._ending = False  # the drain is ending the calls
        self.draining = False

    @property
    def call_sids(self) -> list[str]:
        return list(self._calls)

    def add(self, call_sid: str, call: LiveCall) -> None:
        """A call started (its session may not be running yet)."""
        self._calls[call_sid] = call
        if self._ending:  # it started as the drain was ending the others: it ends too
            call.shut_down(goodbye=False)

    def remove(self, call_sid: str) -> None:
        """The call has ended and its record is finalised."""
        self._calls.pop(call_sid, None)
        self._changed.set()

    def hurry(self) -> None:
        """A second signal: end the live calls now, without a goodbye."""
        self._hurried = True
        self._changed.set()

    async def drain(self, seconds: float) -> None:
        """Let the live calls go on for up to `seconds` (less once hurried), end the rest (with
        the goodbye, unless hurried), and wait until every one has ended."""
        self.draining = True
        log.info("draining: ready no longer", live_calls=len(self._calls), seconds=seconds)
        await self._until_none_left(seconds)
        goodbye = not self._hurried
        if self._calls:
            log.info("ending the live calls", calls=len(self._calls), goodbye=goodbye)
        self._ending = True
        self._shut_down(goodbye=goodbye)
        if goodbye:
            await self._until_none_left(_ENDING_S)
            self._shut_down(goodbye=False)  # hurried meanwhile, or a goodbye took too long
        await self._until_none_left(None)

    def _shut_down(self, *, goodbye: bool) -> None:
        for call in list(self._calls.values()):
            call.shut_down(goodbye=goodbye)

    async def _until_none_left(self, seconds: float | None) -> None:
        """Until no call is left (or, given `seconds`, that long has passed or `hurry`)."""
        with suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while self._calls and (seconds is None or not self._hurried):
                    self._changed.clear()
                    await self._changed.wait()


async def keep_alive(
    live: LiveCalls, calls: CallStore, every_s: float, lost_after_s: float
) -> None:
    """For the server's life, once every `every_s`: mark each live call alive (a batch at a
    time, see HEARTBEAT_BATCHES), sweep for lost calls, and read the gauges (a worker among
    several is not the one scraped each time)."""
    failing = False  # logged once an outage begins and once it ends, not on every batch
    for tick in itertools.count():
        batch = tick % HEARTBEAT_BATCHES
        if batch == 0:
            read_gauges()
        try:
            await calls.heartbeat([sid for sid in live.call_sids if _batch_of(sid) == batch])
            if batch == 0:
                await sweep(calls, lost_after_s)
        except Exception:  # a database outage: the next batch tries again
            if not failing:
                log.exception("call heartbeat or sweep failed; retrying until it works")
            failing = True
        else:
            if failing:
                log.info("call heartbeat and sweep work again")
            failing = False
        await asyncio.sleep(every_s / HEARTBEAT_BATCHES)


def _batch_of(call_sid: str) -> int:
    """The call's heartbeat batch: the same one for its whole life, on any server."""
    return zlib.crc32(call_sid.encode()) % HEARTBEAT_BATCHES


async def sweep(calls: CallStore, lost_after_s: float) -> int:
    """Finalise the active calls whose heartbeat is older than `lost_after_s`; how many this
    sweeper ended."""
    ended = 0
    for call in await calls.stale(utc_now() - timedelta(seconds=lost_after_s)):
        reason = EndReason.SERVER_LOST if call.stream_sid else EndReason.NO_MEDIA_STREAM
        if await calls.finalize_lost(call, reason):
            ended += 1
            log.warning(
                "a lost call was finalised",
                call_sid=call.call_sid,
                reason=reason,
                last_heartbeat=call.heartbeat_at.isoformat() if call.heartbeat_at else None,
            )
    return ended
