"""POST /twilio/voice and /twilio/status against the real server: signatures, numbers, TwiML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase
from twilio.request_validator import RequestValidator

from stores.calls import CallStore
from stores.phone_numbers import PhoneNumberCreate, PhoneNumberStore
from tests.voice_server.conftest import Server, logged
from voice_server.security.secret_key import secret_box
from voice_server.security.stream_tokens import StreamGrant, StreamTokens
from voice_server.serving import serve_in_background
from voice_server.settings import Settings


def call_form(to: str, call_sid: str = "CA" + "1" * 32) -> dict[str, str]:
    return {
        "CallSid": call_sid,
        "AccountSid": "AC" + "0" * 32,
        "From": "+1 (555) 010-0199",
        "To": to,
        "CallStatus": "ringing",
        "Direction": "inbound",
    }


async def post_signed(
    server: Server, path: str, form: dict[str, str], token: str | None = None
) -> httpx.Response:
    url = f"{server.base_url}{path}"
    signature = RequestValidator(token or server.line.auth_token).compute_signature(url, form)
    async with httpx.AsyncClient() as http:
        return await http.post(url, data=form, headers={"X-Twilio-Signature": signature})


async def test_known_number_gets_a_stream_with_token_and_an_active_call(server: Server) -> None:
    response = await post_signed(server, "/twilio/voice", call_form(server.line.number))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    assert stream is not None
    assert stream.attrib["url"] == server.settings.stream_url
    parameters = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    assert parameters["call_sid"] == "CA" + "1" * 32
    secret = server.settings.stream_token_secret.get_secret_value()
    grant = StreamTokens(secret, 60).redeem(parameters, "CA" + "1" * 32)
    assert grant == StreamGrant("CA" + "1" * 32, server.line.agent_id)
    call = await CallStore(server.db).get("CA" + "1" * 32)
    assert call is not None
    assert call.status == "active"
    assert call.from_number == "+15550100199"
    assert call.agent_id == server.line.agent_id


async def test_twilio_retrying_the_webhook_keeps_one_call(server: Server) -> None:
    for _ in range(2):
        response = await post_signed(server, "/twilio/voice", call_form(server.line.number))
        assert response.status_code == 200
    assert await server.db["calls"].count_documents({}) == 1


@pytest.mark.parametrize(
    "signature", [None, "", "bm90IGEgc2lnbmF0dXJl", "signature-for-another-url"]
)
async def test_missing_or_wrong_signature_is_refused(
    server: Server, signature: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    form = call_form(server.line.number)
    if signature == "signature-for-another-url":
        signature = RequestValidator(server.line.auth_token).compute_signature(
            "https://elsewhere.example.com/twilio/voice", form
        )
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.base_url}/twilio/voice", data=form, headers=headers)

    assert response.status_code == 403
    assert "Signature" in response.text
    assert logged(caplog, "webhook refused")
    assert await server.db["calls"].count_documents({}) == 0


async def test_signature_with_another_numbers_token_is_refused(server: Server) -> None:
    response = await post_signed(
        server, "/twilio/voice", call_form(server.line.number), token="someone-elses-token"
    )
    assert response.status_code == 403


async def test_unknown_number_without_deployment_token_cannot_be_verified(server: Server) -> None:
    response = await post_signed(server, "/twilio/voice", call_form("+15550109999"))

    assert response.status_code == 403
    assert "TWILIO_AUTH_TOKEN" in response.text


async def test_unknown_number_hears_an_apology_and_nothing_is_stored(
    database: AsyncDatabase[dict[str, Any]], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with_token = settings.model_copy(update={"twilio_auth_token": SecretStr("deployment-token")})
    async with serve_in_background(with_token, database) as base_url:
        url = f"{base_url}/twilio/voice"
        form = call_form("+15550109999")
        signature = RequestValidator("deployment-token").compute_signature(url, form)
        async with httpx.AsyncClient() as http:
            response = await http.post(url, data=form, headers={"X-Twilio-Signature": signature})

    assert response.status_code == 200
    twiml = ET.fromstring(response.text)
    assert twiml.find("./Say") is not None
    assert twiml.find("./Hangup") is not None
    assert await database["calls"].count_documents({}) == 0
    assert logged(caplog, "not registered")


async def test_inactive_number_is_apologised_for_and_recorded(server: Server) -> None:
    await PhoneNumberStore(server.db, secret_box(server.settings)).create(
        PhoneNumberCreate(
            phoneNumber="+15550100300",
            twilioAccountSid="AC" + "0" * 32,
            twilioAuthToken="inactive-token",
            userId="demo-user",
            isActive=False,
        )
    )
    form = call_form("+15550100300")

    response = await post_signed(server, "/twilio/voice", form, token="inactive-token")

    assert response.status_code == 200
    twiml = ET.fromstring(response.text)
    assert twiml.find("./Say") is not None
    assert twiml.find("./Hangup") is not None
    assert twiml.find("./Connect") is None
    call = await CallStore(server.db).get(form["CallSid"])
    assert call is not None
    assert call.status == "completed"
    assert call.end_reason == "number-inactive"
    assert call.userId == "demo-user"


async def test_terminal_status_callback_finalizes_once(server: Server) -> None:
    form = call_form(server.line.number)
    await post_signed(server, "/twilio/voice", form)
    status = {**form, "CallStatus": "completed", "CallDuration": "12"}

    first = await post_signed(server, "/twilio/status", status)
    second = await post_signed(server, "/twilio/status", {**status, "CallStatus": "in-progress"})

    assert (first.status_code, second.status_code) == (204, 204)
    call = await CallStore(server.db).get(form["CallSid"])
    assert call is not None
    assert call.status == "completed"
    assert call.end_reason == "twilio-completed"


async def test_metrics_count_accepted_calls(server: Server) -> None:
    async with httpx.AsyncClient() as http:
        before = await http.get(f"{server.base_url}/metrics")
        await post_signed(server, "/twilio/voice", call_form(server.line.number))
        after = await http.get(f"{server.base_url}/metrics")

    def accepted(text: str) -> float:
        line = next(
            (
                row
                for row in text.splitlines()
                if row.startswith('voice_calls_total{outcome="accepted"}')
            ),
            "x 0",
        )
        return float(line.split()[-1])

    assert after.status_code == 200
    assert accepted(after.text) == accepted(before.text) + 1
