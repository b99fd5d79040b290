from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from stores import migrations
from stores.migrations import MIGRATIONS, Migration, MigrationError

Db = AsyncDatabase[dict[str, Any]]


async def index_names(database: Db, collection: str) -> set[str]:
    return set(await database[collection].index_information())


async def test_upgrade_twice_is_a_no_op(database: Db) -> None:
    # The fixture has already upgraded.
    assert await migrations.upgrade(database) == []
    assert await migrations.pending(database) == []
    assert await migrations.applied_versions(database) == [m.version for m in MIGRATIONS]
    record = await database["migrations"].find_one({"version": 1})
    assert record is not None
    assert record["name"] == "initial indexes"
    assert record["applied_at"].tzinfo is not None


async def test_initial_indexes_exist(database: Db) -> None:
    info = await database["registered_phone_numbers"].index_information()
    assert info["phoneNumber_live_unique"]["unique"] is True
    assert info["phoneNumber_live_unique"]["partialFilterExpression"] == {"isDeleted": False}
    assert {"userId"} <= set(info)
    assert {"incoming_lookup", "userId"} <= await index_names(database, "agents")
    calls = await database["calls"].index_information()
    assert calls["call_sid_unique"]["unique"] is True
    assert calls["userId_start_time"]["key"] == [("userId", 1), ("start_time", -1)]
    assert {"status", "agent_id"} <= set(calls)


async def test_downgrade_and_upgrade_again(database: Db) -> None:
    versions = [m.version for m in MIGRATIONS]
    undone = await migrations.downgrade(database, 0)
    assert [m.version for m in undone] == versions[::-1]
    assert await migrations.applied_versions(database) == []
    assert await index_names(database, "calls") == {"_id_"}
    assert [m.version for m in await migrations.pending(database)] == versions
    assert [m.version for m in await migrations.upgrade(database)] == versions
    assert "call_sid_unique" in await index_names(database, "calls")


async def test_downgrade_to_current_version_does_nothing(database: Db) -> None:
    assert await migrations.downgrade(database, MIGRATIONS[-1].version) == []


async def test_irreversible_migration_refuses_downgrade(
    database: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def noop(db: object) -> None:
        return None

    irreversible = Migration(MIGRATIONS[-1].version + 1, "irreversible", noop, None)
    monkeypatch.setattr(migrations, "MIGRATIONS", [*MIGRATIONS, irreversible])
    assert await migrations.upgrade(database) == [irreversible]
    with pytest.raises(MigrationError, match=rf"\[{irreversible.version}\]"):
        await migrations.downgrade(database, 0)
    assert await migrations.applied_versions(database) == [
        *(m.version for m in MIGRATIONS),
        irreversible.version,
    ]
