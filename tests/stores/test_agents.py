from datetime import timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from stores.agents import Agent, AgentStore
from stores.phone_numbers import InvalidPhoneNumber, PhoneNumberStore
from tests.stores.factories import BOX, agent, phone_number

Db = AsyncDatabase[dict[str, Any]]
NUMBER = "+15551234567"
DIALLED = "(555) 123-4567"


async def register(database: Db, **fields: Any) -> None:
    await PhoneNumberStore(database, BOX).create(phone_number(NUMBER, **fields))


async def soft_delete(database: Db, collection: str, **query: Any) -> None:
    await database[collection].update_many(query, {"$set": {"isDeleted": True}})


async def test_create_and_get(database: Db) -> None:
    store = AgentStore(database)
    created = await store.create(agent("555 123 4567", greeting="Hi!"))
    assert created.phoneNumber == NUMBER
    assert created.isDeleted is False
    assert (created.temperature, created.maxTokens, created.direction) == (0.7, 300, "incoming")
    assert await store.get(created.id) == created


@pytest.mark.parametrize("agent_id", ["not-an-id", "", "0123456789abcdef01234567"])
async def test_get_unknown_or_invalid_id(database: Db, agent_id: str) -> None:
    assert await AgentStore(database).get(agent_id) is None


async def test_incoming_call_finds_the_agent_with_any_dialled_format(database: Db) -> None:
    await register(database)
    store = AgentStore(database)
    wanted = await store.create(agent(NUMBER))
    await store.create(agent("+15550001111"))
    assert await store.find_for_incoming_call(DIALLED) == wanted
    assert await store.find_for_incoming_call("+1 555 123 4567") == wanted


async def test_the_most_recently_updated_agent_wins(database: Db) -> None:
    await register(database)
    store = AgentStore(database)
    older = await store.create(agent(NUMBER, name="older"))
    newer = await store.create(agent(NUMBER, name="newer"))
    found = await store.find_for_incoming_call(NUMBER)
    assert isinstance(found, Agent)
    assert found.id == newer.id

    later = newer.updated_at + timedelta(seconds=1)
    await database["agents"].update_one({"name": "older"}, {"$set": {"updated_at": later}})
    found = await store.find_for_incoming_call(NUMBER)
    assert isinstance(found, Agent)
    assert found.id == older.id


async def test_unknown_number(database: Db) -> None:
    await AgentStore(database).create(agent(NUMBER))
    assert await AgentStore(database).find_for_incoming_call(NUMBER) is None


async def test_inactive_number(database: Db) -> None:
    await register(database, isActive=False)
    await AgentStore(database).create(agent(NUMBER))
    assert await AgentStore(database).find_for_incoming_call(DIALLED) is None


async def test_deleted_number(database: Db) -> None:
    await register(database)
    await soft_delete(database, "registered_phone_numbers", phoneNumber=NUMBER)
    await AgentStore(database).create(agent(NUMBER))
    assert await AgentStore(database).find_for_incoming_call(DIALLED) is None


async def test_inactive_agent(database: Db) -> None:
    await register(database)
    await AgentStore(database).create(agent(NUMBER, active=False))
    assert await AgentStore(database).find_for_incoming_call(DIALLED) is None


async def test_deleted_agent(database: Db) -> None:
    await register(database)
    await AgentStore(database).create(agent(NUMBER))
    await soft_delete(database, "agents", phoneNumber=NUMBER)
    assert await AgentStore(database).find_for_incoming_call(DIALLED) is None


async def test_outgoing_agent(database: Db) -> None:
    await register(database)
    await AgentStore(database).create(agent(NUMBER, direction="outgoing"))
    assert await AgentStore(database).find_for_incoming_call(DIALLED) is None


async def test_another_users_agent_on_the_number(database: Db) -> None:
    await register(database)
    await AgentStore(database).create(agent(NUMBER, userId="someone-else"))
    assert await AgentStore(database).find_for_incoming_call(DIALLED) is None


async def test_unparseable_dialled_number_raises(database: Db) -> None:
    with pytest.raises(InvalidPhoneNumber):
        await AgentStore(database).find_for_incoming_call("anonymous")
