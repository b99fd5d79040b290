"""The scheduled-call worker: sleeps until a call is due, claims it, places it.

It wakes when the next call becomes due (the earliest pending time, or a lease running out),
and at once when a call is created or moved (a change stream; without one it looks again every
`POLL_S`), so a call created or moved to a time already past rings within a second or two,
and an idle worker costs the database little more than the stream (and, once a minute, a look
for outcomes that never came: `voice_server.scheduling.outcomes`). Claims are atomic
(`stores.scheduled_call_runs`): any number of workers, in any number of servers, run each call
once. At most `max_placing` calls are being placed at a time per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from stores.agents import AgentStore
from stores.change_streams import ChangeStreamsUnsupported, open_change_stream
from stores.database import Database
from stores.phone_numbers import PhoneNumberStore
from stores.prompts import PromptStore
from stores.scheduled_call_runs import Claim, ScheduledCallRuns
from stores.scheduled_calls import COLLECTION, ScheduledCall
from voice_server.log import get_logger
from voice_server.retry import transient
from voice_server.scheduling.outcomes import recover_outcomes
from voice_server.scheduling.placing import Dialling, place
from voice_server.security.secret_key import secret_box
from voice_server.settings import Settings
from voice_server.twilio_api.rest import TwilioRest

log = get_logger(__name__)

POLL_S = 1.0  # without change streams
OUTCOME_SWEEP_S = 60.0  # how often overdue outcomes are looked for
MAX_SLEEP_S = 60.0  # a check now and then, whatever the stream says
RETRY_S = 2.0  # after a database error
_PIPELINE: list[dict[str, Any]] = [
    {"$match": {"operationType": {"$in": ["insert", "update", "replace"]}}},
    {"$project": {"operationType": 1, "updateDescription.updatedFields.scheduledDateTime": 1}},
]


def _may_be_due(event: dict[str, Any]) -> bool:
    """Whether a write can have made a call due: a new call, or a new time. (The workers' own
    writes, claims and outcomes, cannot: waking on them would have every worker look again at
    every write of every other.)"""
    if event["operationType"] != "update":
        return True
    return "scheduledDateTime" in event.get("updateDescription", {}).get("updatedFields", {})


def worker_name() -> str:
    """Who holds a claim: the host and process, so a log line can name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ScheduledCallWorker:
    def __init__(
        self, db: Database, dialling: Dialling, *, name: str | None = None, max_placing: int = 20
    ) -> None:
        self._db = db
        self._dialling = dialling
        self.name = name or worker_name()
        self._room = asyncio.Semaphore(max_placing)
        self._changed = asyncio.Event()
        self._lease = timedelta(seconds=dialling.settings.scheduler_lease_seconds)

    async def run(self) -> None:
        """Place due calls until cancelled."""
        log.info("scheduled-call worker started", worker=self.name)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch())
            group.create_task(self._sweep_outcomes())
            while True:
                try:
                    await self._claim_all(group)
                    wake_at = await self._dialling.runs.next_wake()
                except PyMongoError as error:
                    # The database is down, or refused a query: the calls wait, and the
                    # worker looks again (a server must not lose its worker to an outage).
                    level = log.warning if transient(error) else log.error
                    level("scheduled calls could not be read; retrying", error=str(error))
                    wake_at = datetime.now(UTC) + timedelta(seconds=RETRY_S)
                await self._sleep_until(wake_at)

    async def _claim_all(self, group: asyncio.TaskGroup) -> None:
        runs = self._dialling.runs
        while True:
            await self._room.acquire()
            try:
                call = await runs.claim_due(datetime.now(UTC), self.name, self._lease)
            except BaseException:
                self._room.release()
                raise
            if call is None:
                self._room.release()
                return
            group.create_task(self._place(Claim(call.id, self.name), call))

    async def _place(self, claim: Claim, call: ScheduledCall) -> None:
        try:
            log.info("scheduled call claimed", scheduled_call_id=claim.call_id, worker=self.name)
            await place(self._dialling, claim, call)
        except Exception as error:  # one call's failure must not stop the worker
            log.error(
                "placing a scheduled call failed; another worker takes it over after its lease",
                scheduled_call_id=claim.call_id,
                error=repr(error),
            )
        finally:
            self._room.release()
            self._changed.set()  # a place freed: look for more due calls

    async def _sweep_outcomes(self) -> None:
        """Every `OUTCOME_SWEEP_S`, record the outcomes whose callback never came."""
        while True:
            try:
                await recover_outcomes(self._dialling)
            except PyMongoError as error:
                log.warning("overdue outcomes could not be looked for", error=str(error))
            await asyncio.sleep(OUTCOME_SWEEP_S)

    async def _sleep_until(self, wake_at: datetime | None) -> None:
        delay = MAX_SLEEP_S
        if wake_at is not None:
            delay = min(delay, max(0.0, (wake_at - datetime.now(UTC)).total_seconds()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._changed.wait()
        self._changed.clear()

    async def _watch(self) -> None:
        """Wake the loop at every write to the collection (or every `POLL_S` without change
        streams); a broken stream is opened again."""
        while True:
            try:
                async with open_change_stream(self._db, COLLECTION, _PIPELINE) as stream:
                    async for event in stream:
                        if _may_be_due(event):
                            self._changed.set()
            except ChangeStreamsUnsupported:
                log.info("no change streams: looking for due calls every second")
                while True:
                    await asyncio.sleep(POLL_S)
                    self._changed.set()
            except PyMongoError as error:
                log.warning("scheduled-call change stream broke; reopening", error=str(error))
                await asyncio.sleep(RETRY_S)


def scheduled_call_worker(
    db: Database, settings: Settings, twilio: TwilioRest
) -> ScheduledCallWorker:
    """A worker on `db` placing calls through `twilio` (inside `serve`, or on its own)."""
    dialling = Dialling(
        runs=ScheduledCallRuns(db),
        numbers=PhoneNumberStore(db, secret_box(settings)),
        prompts=PromptStore(db),
        agents=AgentStore(db),
        twilio=twilio,
        settings=settings,
    )
    return ScheduledCallWorker(db, dialling)
