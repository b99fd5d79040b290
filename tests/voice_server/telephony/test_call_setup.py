"""Call set-up off the database's critical path: the voice webhook and the stream start answer
from the directory (`stores.directory`), and stay true to every write to numbers and agents."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from media import twilio as protocol
from stores.api_keys import ApiKeyStore
from stores.database import connect
from tests.command_listener import StartedCommands
from tests.voice_server.conftest import Server, open_server
from tests.voice_server.telephony.test_stream import (
    accept_call,
    first_agent_media,
    start_frame,
)
from tests.voice_server.telephony.test_stream import connect as connect_stream
from tests.voice_server.telephony.test_voice_webhooks import call_form, post_signed
from voice_server.seed import DEMO_USER
from voice_server.serving import serve_in_background
from voice_server.settings import Settings

Db = AsyncDatabase[dict[str, Any]]
FIRST, SECOND = "CA" + "1" * 32, "CA" + "2" * 32
# What is not one of a call's own round trips: change streams (the directory's, the call
# log's) and cursor upkeep.
_NOT_A_CALLS = {"getMore", "killCursors", "endSessions", "hello", "isMaster", "ping"}
CHANGE_SEEN_WITHIN_S = 1.0


class Commands(StartedCommands):
    """The commands a client sends, as (command, collection), change streams left out."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        pipeline = event.command.get("pipeline") or [{}]
        if name in _NOT_A_CALLS or "$changeStream" in pipeline[0]:
            return
        self.sent.append((name, str(event.command.get(name, ""))))


@pytest.fixture
async def counted(
    mongo_uri: str, database: Db, settings: Settings
) -> AsyncIterator[tuple[Server, Commands]]:
    """The server on a client of its own whose commands are counted (no heartbeat meanwhile)."""
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri, tz_aware=True, event_listeners=[commands]
    )
    quiet = settings.model_copy(update={"heartbeat_seconds": 300})
    try:
        async with open_server(client[database.name], quiet) as server:
            yield server, commands
    finally:
        await client.close()


async def test_a_call_is_set_up_with_one_write_and_no_read_before_its_greeting(
    counted: tuple[Server, Commands],
) -> None:
    server, commands = counted
    await accept_call(server, FIRST)  # the number and its agent are read once, then kept
    commands.sent.clear()

    url, parameters = await accept_call(server, SECOND)
    webhook = list(commands.sent)
    commands.sent.clear()
    async with connect_stream(url, max_size=2**21) as websocket:
        await websocket.send(protocol.build_connected())
        await websocket.send(start_frame(SECOND, parameters))
        await first_agent_media(websocket)
        before_greeting = list(commands.sent)

    assert webhook == [("findAndModify", "calls")]  # the call record, and nothing else
    assert before_greeting == [("update", "calls")]  # the claim; the token holds the rest


def api_client(server: Server, secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{server.base_url}/api", headers={"Authorization": f"Bearer {secret}"}
    )


async def connected(server: Server, call_sid: str) -> bool:
    response = await post_signed(server, "/twilio/voice", call_form(server.line.number, call_sid))
    assert response.status_code == 200, response.text
    return "<Connect>" in response.text


async def seconds_until_turned_away(server: Server) -> float:
    """How long the server goes on connecting new calls to the demo number (each attempt a
    new call), at most CHANGE_SEEN_WITHIN_S."""
    began = time.monotonic()
    attempt = 0
    async with asyncio.timeout(CHANGE_SEEN_WITHIN_S):
        while await connected(server, f"CA{attempt + 100:032x}"):
            attempt += 1
            # Polled: the other server's directory is not ours to wait on.
            await asyncio.sleep(0.02)
    return time.monotonic() - began


async def test_an_agent_switched_off_through_the_api_is_seen_at_once_and_by_another_server(
    server: Server, mongo_uri: str, database: Db
) -> None:
    key = await ApiKeyStore(database).create(DEMO_USER)
    other_client = connect(mongo_uri)  # another server: a client and a directory of its own
    try:
        async with serve_in_background(server.settings, other_client[database.name]) as other_url:
            other = Server(other_url, database, server.line, server.settings)
            assert await connected(server, FIRST)
            assert await connected(other, SECOND)  # both directories now hold the agent

            async with api_client(server, key.secret) as api:
                response = await api.patch(
                    f"/agents/{server.line.agent_id}", json={"active": False}
                )
                assert response.status_code == 200, response.text

            assert not await connected(server, "CA" + "3" * 32)
            assert await seconds_until_turned_away(other) < CHANGE_SEEN_WITHIN_S
    finally:
        await other_client.close()


async def test_a_number_switched_off_by_another_client_is_seen_within_a_second(
    server: Server, mongo_uri: str, database: Db
) -> None:
    assert await connected(server, FIRST)
    other_client = connect(mongo_uri)
    try:
        await other_client[database.name]["registered_phone_numbers"].update_one(
            {"phoneNumber": server.line.number}, {"$set": {"isActive": False}}
        )
        assert await seconds_until_turned_away(server) < CHANGE_SEEN_WITHIN_S
    finally:
        await other_client.close()


async def test_a_deleted_number_is_turned_away(server: Server, database: Db) -> None:
    key = await ApiKeyStore(database).create(DEMO_USER)
    assert await connected(server, FIRST)
    number = await database["registered_phone_numbers"].find_one(
        {"phoneNumber": server.line.number}
    )
    assert number is not None

    async with api_client(server, key.secret) as api:
        response = await api.delete(f"/phone-numbers/{number['_id']}")
        assert response.status_code == 200, response.text
    response = await post_signed(server, "/twilio/voice", call_form(server.line.number, SECOND))

    # No longer ours: its token no longer signs, and no deployment token is set.
    assert response.status_code == 403
    assert await database["calls"].find_one({"call_sid": SECOND}) is None
