"""Webhook bodies are capped before any form parsing (and so before the signature check), on
the real server: by `Content-Length` at once, by counting when the body comes chunked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.voice_server.conftest import Server, logged
from tests.voice_server.telephony.test_voice_webhooks import call_form, post_signed

WEBHOOKS = ["/twilio/voice", "/twilio/status", "/twilio/sms", "/twilio/sms-status"]
FIELD = b"f=" + b"a" * 100_000  # one field, well past the 64 KB a webhook may send


@pytest.mark.parametrize("path", WEBHOOKS)
async def test_an_oversized_unsigned_webhook_is_refused_unread(
    server: Server, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post(
            path,
            content=FIELD * 20,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 413
    assert [entry["seen"] for entry in logged(caplog, "request body too large")] == [
        f"Content-Length {len(FIELD) * 20}"
    ]
    assert not logged(caplog, "webhook refused")  # the form was never read


async def test_a_chunked_flood_is_refused_once_it_passes_the_cap(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    async def flood() -> AsyncIterator[bytes]:
        for _ in range(100):  # 10 MB, sent chunked: no Content-Length to refuse it by
            yield FIELD

    async def one(http: httpx.AsyncClient) -> int:
        response = await http.post(
            "/twilio/sms",
            content=flood(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        return response.status_code

    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert await asyncio.gather(*(one(http) for _ in range(4))) == [413] * 4
    assert [entry["seen"] for entry in logged(caplog, "request body too large")] == [
        f"more than {server.settings.webhook_body_max_bytes} bytes sent"
    ] * 4


async def test_a_webhook_at_twilios_size_still_goes_through(server: Server) -> None:
    form = call_form(server.line.number) | {"Padding": "x" * 30_000}
    response = await post_signed(server, "/twilio/voice", form)
    assert response.status_code == 200
