"""The webhooks of calls we placed accept only Twilio's requests about that very call: signed
with the token of the scheduled call's number, for the CallSid Twilio gave its destination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from stores.calls import CallStore
from stores.phone_numbers import PhoneNumberStore
from stores.scheduled_call_runs import Claim, ScheduledCallRuns
from stores.scheduled_calls import ScheduledCall, ScheduledCallCreate, ScheduledCallStore
from tests.voice_server.conftest import Server
from voice_server.security.secret_key import secret_box
from voice_server.seed import DEMO_USER

DIALLED = "CA" + "5" * 32
CALLEE = "+15550100300"


async def dialled_call(server: Server, **fields: Any) -> ScheduledCall:
    """A normal call from the demo number whose one destination Twilio is ringing."""
    numbers = PhoneNumberStore(server.db, secret_box(server.settings))
    number = await numbers.find_registered(server.line.number)
    assert number is not None
    values: dict[str, Any] = {
        "callType": "normal",
        "message": "Your table is ready.",
        "fromPhoneNumberId": number.id,
        "toPhoneNumbers": [CALLEE],
        "scheduledDateTime": datetime.now(UTC),
        "userId": DEMO_USER,
    }
    call = await ScheduledCallStore(server.db).create(ScheduledCallCreate(**values | fields))
    runs = ScheduledCallRuns(server.db)
    assert await runs.claim_due(datetime.now(UTC), "worker", timedelta(minutes=1))
    claim = Claim(call.id, "worker")
    assert await runs.dialling(claim, 0)
    assert await runs.dialled(claim, 0, DIALLED, attempts=1)
    return call


def answered(server: Server, call_sid: str = DIALLED) -> dict[str, str]:
    return {
        "CallSid": call_sid,
        "AccountSid": server.line.account_sid,
        "From": server.line.number,
        "To": CALLEE,
        "CallStatus": "in-progress",
        "Direction": "outbound-api",
    }


async def post(server: Server, path: str, form: dict[str, str], token: str) -> httpx.Response:
    url = f"{server.base_url}{path}"
    signature = RequestValidator(token).compute_signature(url, form)
    async with httpx.AsyncClient() as http:
        return await http.post(url, data=form, headers={"X-Twilio-Signature": signature})


async def test_the_answer_records_an_outbound_call_linked_to_its_scheduled_call(
    server: Server,
) -> None:
    call = await dialled_call(server)
    path = f"/twilio/outbound?scheduled={call.id}&destination=0"

    response = await post(server, path, answered(server), server.line.auth_token)

    assert response.status_code == 200
    assert '<Parameter name="opening" value="message"' in response.text
    record = await CallStore(server.db).get(DIALLED)
    assert record is not None
    assert (record.direction, record.scheduled_call_id) == ("outbound", call.id)
    assert (record.from_number, record.to_number) == (server.line.number, CALLEE)
    placed = await ScheduledCallRuns(server.db).get(call.id)
    assert placed is not None
    assert placed.destinations[0].callId == record.id


@pytest.mark.parametrize(
    ("path", "call_sid", "token"),
    [
        ("/twilio/outbound?scheduled={id}&destination=0", DIALLED, "another-accounts-token"),
        ("/twilio/outbound?scheduled={id}&destination=0", "CA" + "6" * 32, None),
        ("/twilio/outbound?scheduled={id}&destination=1", DIALLED, None),
        ("/twilio/outbound?scheduled=" + "0" * 24 + "&destination=0", DIALLED, None),
        ("/twilio/machine?scheduled={id}&destination=0", DIALLED, "another-accounts-token"),
    ],
    ids=["wrong token", "another CallSid", "no such destination", "no such call", "machine"],
)
async def test_anything_but_twilio_about_that_call_is_refused(
    server: Server, path: str, call_sid: str, token: str | None
) -> None:
    call = await dialled_call(server)
    form = answered(server, call_sid) | {"AnsweredBy": "machine_end_beep"}

    response = await post(server, path.format(id=call.id), form, token or server.line.auth_token)

    assert response.status_code == 403
    assert await CallStore(server.db).get(call_sid) is None
    placed = await ScheduledCallRuns(server.db).get(call.id)
    assert placed is not None
    assert placed.destinations[0].outcome is None
