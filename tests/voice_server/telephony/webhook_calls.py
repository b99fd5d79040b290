"""Tenant A's call, and the refusal a webhook logs: shared by the webhook tenancy and token
tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.voice_server.conftest import DEPLOYMENT_TOKEN, TENANT_B, Server, logged
from tests.voice_server.telephony.test_voice_webhooks import call_form, post_signed

A_CALL = "CA" + "a" * 32


async def accepted_call(server: Server) -> dict[str, Any]:
    """The demo number's (tenant A's) call A_CALL, accepted; its document as stored."""
    response = await post_signed(server, "/twilio/voice", call_form(server.line.number, A_CALL))
    assert response.status_code == 200, response.text
    return await call_document(server)


async def call_document(server: Server) -> dict[str, Any]:
    document = await server.db["calls"].find_one({"call_sid": A_CALL})
    assert document is not None
    return document


def refusal(caplog: pytest.LogCaptureFixture) -> str:
    """Why the one refused webhook was refused; no auth token is in the log."""
    (entry,) = logged(caplog, "webhook refused")
    for secret in (TENANT_B.auth_token, DEPLOYMENT_TOKEN):
        assert secret not in caplog.text
    return str(entry["reason"])
