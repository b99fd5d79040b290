"""Twilio webhooks act only on calls of the number whose token signed them, on the real server:
another tenant's token (or another number's) cannot take over, or end, a call that is not on its
number; the call is left as it was and the attempt is refused and logged."""

from __future__ import annotations

import pytest

from stores.phone_numbers import PhoneNumberStore, PhoneNumberUpdate
from tests.voice_server.conftest import DEPLOYMENT_TOKEN, Server, Tenant, add_tenant
from tests.voice_server.telephony.test_voice_webhooks import call_form, post_signed
from tests.voice_server.telephony.webhook_calls import A_CALL, accepted_call, call_document, refusal
from voice_server.security.secret_key import secret_box


def form_of(tenant: Tenant, call_sid: str = A_CALL, **fields: str) -> dict[str, str]:
    """A call form for `tenant`'s own number and account, naming `call_sid`."""
    return call_form(tenant.number, call_sid) | {"AccountSid": tenant.account_sid} | fields


@pytest.mark.parametrize("b_number", ["active", "inactive"])
async def test_another_tenants_voice_webhook_cannot_take_a_call_over(
    server: Server, tenant_b: Tenant, b_number: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = await accepted_call(server)
    if b_number == "inactive":  # the turn-away path records and ends the call at once
        numbers = PhoneNumberStore(server.db, secret_box(server.settings))
        found = await numbers.find_registered(tenant_b.number)
        assert found is not None
        await numbers.update(tenant_b.user_id, found.id, PhoneNumberUpdate(isActive=False))

    response = await post_signed(server, "/twilio/voice", form_of(tenant_b), tenant_b.auth_token)

    assert response.status_code == 403
    assert "another" in refusal(caplog)
    assert await call_document(server) == before  # status, stream, transcript untouched
    assert await server.db["calls"].count_documents({}) == 1


async def test_another_tenants_status_callback_cannot_end_a_call(
    server: Server, tenant_b: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    before = await accepted_call(server)
    form = form_of(tenant_b, CallStatus="completed", CallDuration="3")

    response = await post_signed(server, "/twilio/status", form, tenant_b.auth_token)

    assert response.status_code == 403
    assert "another" in refusal(caplog)
    assert await call_document(server) == before


async def test_an_outbound_status_callback_is_checked_for_the_number_in_from(
    server: Server, tenant_b: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """For a call we placed, our number is `From`: B's token, B's number there, A's call."""
    before = await accepted_call(server)
    form = form_of(tenant_b, To=server.line.number, CallStatus="completed",
                   Direction="outbound-api") | {"From": tenant_b.number}  # fmt: skip

    response = await post_signed(server, "/twilio/status", form, tenant_b.auth_token)

    assert response.status_code == 403
    assert "another" in refusal(caplog)
    assert await call_document(server) == before


async def test_a_call_of_another_number_of_the_same_owner_is_refused(server: Server) -> None:
    other = Tenant("demo-user", "+15550100300", "AC" + "0" * 32, "second-line-token", "")
    second = await add_tenant(server, other)
    before = await accepted_call(server)

    response = await post_signed(server, "/twilio/voice", form_of(second), second.auth_token)

    assert response.status_code == 403
    assert await call_document(server) == before


async def test_a_status_callback_for_an_unregistered_number_cannot_end_a_call(
    deployment_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server = deployment_server
    before = await accepted_call(server)
    form = call_form("+15550109999", A_CALL) | {"CallStatus": "completed"}

    response = await post_signed(server, "/twilio/status", form, DEPLOYMENT_TOKEN)

    assert response.status_code == 403
    assert "another" in refusal(caplog)
    assert await call_document(server) == before


async def test_the_owners_own_status_callback_still_ends_the_call(
    server: Server, tenant_b: Tenant
) -> None:
    await accepted_call(server)
    response = await post_signed(server, "/twilio/status", form_of(tenant_b, CallStatus="busy"),
                                 tenant_b.auth_token)  # fmt: skip
    assert response.status_code == 403
    form = call_form(server.line.number, A_CALL) | {"CallStatus": "completed"}

    assert (await post_signed(server, "/twilio/status", form)).status_code == 204
    ended = await call_document(server)
    assert (ended["status"], ended["end_reason"]) == ("completed", "twilio-completed")
