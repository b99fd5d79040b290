"""Which token signs a webhook for a number, on the real server: its own, never the deployment's
when it has one; a token that cannot be opened refuses; the form's account must be the number's."""

from __future__ import annotations

import pytest

from stores.secrets import SecretBox
from tests.voice_server.conftest import DEPLOYMENT_TOKEN, Server
from tests.voice_server.sms.sms_line import sms_form
from tests.voice_server.telephony.test_voice_webhooks import call_form, post_signed
from tests.voice_server.telephony.webhook_calls import A_CALL, accepted_call, call_document, refusal


def deployment_signed_form(server: Server, path: str) -> dict[str, str]:
    """What Twilio posts to `path` about the demo number (our number is `From` in an SMS
    status, `To` everywhere else)."""
    number = server.line.number
    if path == "/twilio/sms":
        return sms_form(number, "Hi", "SMdeploy")
    if path == "/twilio/sms-status":
        return {"MessageSid": "SMdeploy", "MessageStatus": "delivered", "From": number,
                "To": "+15550100199", "AccountSid": "AC" + "0" * 32}  # fmt: skip
    return call_form(number, A_CALL) | ({"CallStatus": "completed"} if "status" in path else {})


@pytest.mark.parametrize("path", ["/twilio/voice", "/twilio/status", "/twilio/sms",
                                  "/twilio/sms-status"])  # fmt: skip
async def test_the_deployment_token_does_not_speak_for_a_number_with_its_own(
    deployment_server: Server, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = deployment_server
    if path == "/twilio/status":
        before = await accepted_call(server)

    response = await post_signed(server, path, deployment_signed_form(server, path),
                                 DEPLOYMENT_TOKEN)  # fmt: skip

    assert response.status_code == 403
    assert "Signature" in refusal(caplog)
    if path == "/twilio/status":
        assert await call_document(server) == before
    else:
        assert await server.db["calls"].count_documents({}) == 0
    assert await server.db["messages"].count_documents({}) == 0


async def test_the_deployment_token_speaks_for_a_registered_number_without_a_token(
    deployment_server: Server,
) -> None:
    server = deployment_server
    # A record written without a token (imported, or from before tokens were required).
    await server.db["registered_phone_numbers"].update_one(
        {"phoneNumber": server.line.number}, {"$set": {"twilioAuthToken": ""}}
    )

    response = await post_signed(server, "/twilio/voice", call_form(server.line.number, A_CALL),
                                 DEPLOYMENT_TOKEN)  # fmt: skip

    assert response.status_code == 200
    assert "<Connect>" in response.text
    assert (await call_document(server))["userId"] == "demo-user"


async def test_a_number_whose_token_cannot_be_opened_is_refused(
    deployment_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server = deployment_server
    other_key = SecretBox(SecretBox.generate_key())
    await server.db["registered_phone_numbers"].update_one(
        {"phoneNumber": server.line.number},
        {"$set": {"twilioAuthToken": other_key.seal("rotated-away")}},
    )

    response = await post_signed(server, "/twilio/voice", call_form(server.line.number, A_CALL),
                                 DEPLOYMENT_TOKEN)  # fmt: skip

    assert response.status_code == 403
    assert "another key" in refusal(caplog)
    assert await server.db["calls"].count_documents({}) == 0


async def test_an_account_other_than_the_numbers_is_refused(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    form = call_form(server.line.number, A_CALL) | {"AccountSid": "AC" + "f" * 32}

    response = await post_signed(server, "/twilio/voice", form)

    assert response.status_code == 403
    assert "AccountSid" in refusal(caplog)
    assert await server.db["calls"].count_documents({}) == 0
