"""The real app under uvicorn on a loopback port, on a fresh database, with a demo line; and a
second customer on the same server, to play the other tenant."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from stores import migrations
from stores.agents import AgentStore
from stores.database import connect
from stores.embedded import EmbeddedDatabase
from stores.phone_numbers import PhoneNumberStore
from tests.database_outage import DatabaseOutage
from tests.stores.factories import agent, phone_number
from voice_server.log import configure_logging
from voice_server.providers import local
from voice_server.providers.openai_registry import OpenAiProviders, openai_defaults
from voice_server.security.secret_key import secret_box
from voice_server.seed import DemoLine, seed_demo
from voice_server.serving import serve_in_background
from voice_server.settings import Settings

from .openai_fakes import TUNING, FakeOpenAiHttp, FakeRealtime, serve_http, serve_realtime


@dataclasses.dataclass(frozen=True)
class Server:
    base_url: str
    db: AsyncDatabase[dict[str, Any]]
    line: DemoLine
    settings: Settings


@pytest.fixture(scope="session", autouse=True)
def _logging() -> Iterator[None]:
    configure_logging("INFO", "console")
    yield
    logging.getLogger().handlers.clear()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # No scheduled-call worker unless a test asks for one: its log lines and its change stream.
    return Settings(data_dir=tmp_path, log_format="console", scheduler=False)


@dataclasses.dataclass(frozen=True)
class Tenant:
    """Another customer of the same server: a number, Twilio account, token and agent of its own."""

    user_id: str
    number: str
    account_sid: str
    auth_token: str
    agent_id: str


DEPLOYMENT_TOKEN = "deployment-token"
TENANT_B = Tenant("user-b", "+15550100200", "AC" + "b" * 32, "token-of-b", "")


@asynccontextmanager
async def open_server(
    database: AsyncDatabase[dict[str, Any]], settings: Settings
) -> AsyncIterator[Server]:
    line = await seed_demo(database, secret_box(settings))
    async with serve_in_background(settings, database) as base_url:
        yield Server(
            base_url, database, line, settings.model_copy(update={"public_base_url": base_url})
        )


@pytest.fixture
async def server(
    database: AsyncDatabase[dict[str, Any]], settings: Settings
) -> AsyncIterator[Server]:
    async with open_server(database, settings) as server:
        yield server


@pytest.fixture(params=["stopped", "frozen"])
async def outage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DatabaseOutage]:
    """A migrated database on a SecantusDB of the test's own, which the test may take away
    (`tests.database_outage`); it is back when the test ends. Both kinds unless the test asks
    for one (`@pytest.mark.parametrize("outage", ["stopped"], indirect=True)`)."""
    with EmbeddedDatabase(tmp_path / "outage-db") as server:
        client = connect(server.uri)
        db = client["voice_agent"]
        await migrations.upgrade(db)
        outage = DatabaseOutage(server, db, request.param)
        try:
            yield outage
        finally:
            await outage.end()
            await client.close()


@pytest.fixture
async def deployment_server(
    database: AsyncDatabase[dict[str, Any]], settings: Settings
) -> AsyncIterator[Server]:
    """The server with a deployment-wide `TWILIO_AUTH_TOKEN` (DEPLOYMENT_TOKEN)."""
    with_token = settings.model_copy(update={"twilio_auth_token": SecretStr(DEPLOYMENT_TOKEN)})
    async with open_server(database, with_token) as server:
        yield server


async def add_tenant(server: Server, tenant: Tenant = TENANT_B) -> Tenant:
    """Register `tenant`'s number (sealed with the server's key) and an incoming agent on it."""
    numbers = PhoneNumberStore(server.db, secret_box(server.settings))
    await numbers.create(
        phone_number(
            tenant.number,
            userId=tenant.user_id,
            twilioAccountSid=tenant.account_sid,
            twilioAuthToken=tenant.auth_token,
        )
    )
    models = {"sttModel": local.STT_MODEL, "inferenceModel": local.LLM_MODEL,
              "ttsModel": local.TTS_MODEL}  # fmt: skip
    created = await AgentStore(server.db).create(
        agent(tenant.number, userId=tenant.user_id, **models)
    )
    return dataclasses.replace(tenant, agent_id=created.id)


@pytest.fixture
async def tenant_b(server: Server) -> Tenant:
    return await add_tenant(server)


def logged(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    """The structured log entries whose event text contains `event`."""
    return [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict) and event in str(record.msg.get("event", ""))
    ]


@pytest.fixture
async def http_fake() -> AsyncIterator[FakeOpenAiHttp]:
    async with serve_http(FakeOpenAiHttp()) as fake:
        yield fake


@pytest.fixture
async def realtime_fake() -> AsyncIterator[FakeRealtime]:
    async with serve_realtime(FakeRealtime()) as fake:
        yield fake


@pytest.fixture
async def openai_providers(
    http_fake: FakeOpenAiHttp, realtime_fake: FakeRealtime
) -> AsyncIterator[OpenAiProviders]:
    """The OpenAI providers, the real client pointed at the stand-ins (no network, no key)."""
    defaults = openai_defaults(
        "test-key",
        f"{http_fake.base_url}/v1",
        websocket_base_url=realtime_fake.websocket_base_url,
        tuning=TUNING,
    )
    yield defaults
    await defaults.aclose()
