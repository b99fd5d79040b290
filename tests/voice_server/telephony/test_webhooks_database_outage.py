"""Twilio's call webhooks and media streams while the database is away: an answer within ~2 s,
never a 500 (which Twilio plays as "an application error has occurred"), and a log line holding
what could not be stored."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import httpx
import pytest
from twilio.request_validator import RequestValidator

from media import twilio as protocol
from tests.database_outage import DatabaseOutage
from tests.voice_server.conftest import Server, logged, open_server
from tests.voice_server.telephony.test_stream import accept_call, closed_code, connect, start_frame
from tests.voice_server.telephony.test_voice_webhooks import call_form
from voice_server.settings import Settings
from voice_server.telephony.voice_webhooks import APOLOGY

ANSWER_WITHIN_S = 3.0
CALL_SID = "CA" + "d" * 32


async def post_timed(
    server: Server, path: str, form: dict[str, str]
) -> tuple[httpx.Response, float]:
    """Post a signed webhook; the answer and how long it took (waiting as long as Twilio would)."""
    url = f"{server.base_url}{path}"
    signature = RequestValidator(server.line.auth_token).compute_signature(url, form)
    async with httpx.AsyncClient(timeout=60) as http:
        started = time.monotonic()
        response = await http.post(url, data=form, headers={"X-Twilio-Signature": signature})
        return response, time.monotonic() - started


async def test_a_call_while_the_database_is_down_hears_an_apology_and_is_logged(
    outage: DatabaseOutage, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_server(outage.db, settings) as server:
        await outage.begin()
        response, took = await post_timed(
            server, "/twilio/voice", call_form(server.line.number, CALL_SID)
        )
        await outage.end()

    assert (response.status_code, took < ANSWER_WITHIN_S) == (200, True), (response.text, took)
    twiml = ET.fromstring(response.text)
    assert [(element.tag, element.text) for element in twiml] == [
        ("Say", APOLOGY),
        ("Hangup", None),
    ]
    (entry,) = logged(caplog, "the database is unreachable")
    assert entry["level"] == "error"
    assert entry["form"] == call_form(server.line.number, CALL_SID)
    assert entry["signature_verified"] is False


async def test_a_call_status_while_the_database_is_down_is_answered_and_logged(
    outage: DatabaseOutage, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    form = call_form("+1 (555) 010-0100", CALL_SID) | {"CallStatus": "completed"}
    async with open_server(outage.db, settings) as server:
        await outage.begin()
        response, took = await post_timed(
            server, "/twilio/status", form | {"To": server.line.number}
        )
        await outage.end()

    assert (response.status_code, took < ANSWER_WITHIN_S) == (204, True), (response.text, took)
    (entry,) = logged(caplog, "the database is unreachable")
    assert entry["form"] == form | {"To": server.line.number}


@pytest.mark.parametrize("outage", ["frozen"], indirect=True)
async def test_a_stream_that_starts_while_the_database_is_down_is_closed_at_once(
    outage: DatabaseOutage, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_server(outage.db, settings) as server:
        url, parameters = await accept_call(server, CALL_SID)
        await outage.begin()
        started = time.monotonic()
        async with connect(url) as websocket:
            await websocket.send(protocol.build_connected())
            await websocket.send(start_frame(CALL_SID, parameters))
            code = await closed_code(websocket)
        took = time.monotonic() - started
        await outage.end()

    assert (code, took < ANSWER_WITHIN_S) == (1011, True), took
    (entry,) = logged(caplog, "media stream refused: the database is unreachable")
    assert (entry["level"], entry["call_sid"]) == ("error", CALL_SID)
