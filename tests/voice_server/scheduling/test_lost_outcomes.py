"""A call whose status callback never reached us gets its outcome from Twilio's REST API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from stores.scheduled_call_runs import Claim, ScheduledCallRuns
from tests.voice_server.conftest import logged
from tests.voice_server.scheduling.line import Db, calling_line, later, settled, workers
from voice_server.settings import Settings
from voice_server.simulation.callees import Callee
from voice_server.simulation.twilio_standin import TwilioStandin
from voice_server.twilio_api.calls import CallUrls, place_call
from voice_server.twilio_api.rest import Credentials, TwilioRest

NOWHERE = "http://127.0.0.1:9/twilio/status"  # no server: the callback is lost


async def test_an_outcome_whose_callback_was_lost_is_asked_of_twilio(
    database: Db, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    standin = TwilioStandin(default_callee=Callee(kind="busy", ring_s=0.1))
    quick = settings.model_copy(update={"scheduled_call_outcome_wait_seconds": 1})
    async with calling_line(database, quick, worker=False, standin=standin) as line:
        call = await line.schedule(scheduledDateTime=later(3600))
        # A worker dialled it and Twilio placed the call; its status callback never came.
        twilio = TwilioRest(standin.base_url)
        urls = CallUrls(answer=f"{line.base_url}/twilio/outbound", status=NOWHERE, machine=NOWHERE)
        credentials = Credentials(line.demo.account_sid, line.demo.auth_token)
        sid = await place_call(
            twilio, credentials, from_=line.demo.number, to="+15550100300", urls=urls
        )
        await twilio.aclose()
        await standin.finished(sid)
        runs = ScheduledCallRuns(database)
        assert await runs.claim_due(later(7200), "gone", timedelta(minutes=1))
        claim = Claim(call.id, "gone")
        assert await runs.dialling(claim, 0)
        assert await runs.dialled(claim, 0, sid, attempts=1)
        await runs.release(claim)
        long_ago = datetime.now(UTC) - timedelta(minutes=5)
        await database["scheduled_calls"].update_one(
            {"_id": ObjectId(call.id)}, {"$set": {"destinations.0.dialledAt": long_ago}}
        )
        assert (await line.current(call.id)).status == "in-progress"

        async with workers(line):
            done = await settled(line, call.id)

    assert (done.status, done.destinations[0].outcome) == ("failed", "busy")
    (recovered,) = logged(caplog, "outcome taken from Twilio: its status callback never came")
    assert (recovered["call_sid"], recovered["outcome"]) == (sid, "busy")
