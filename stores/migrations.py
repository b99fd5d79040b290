"""Versioned migrations and their runner; the only place indexes are created.

Each applied migration is recorded in the `migrations` collection as
`{_id: version, version, name, applied_at}`; the `_id` makes a second record of the same
version fail, so two runners racing cannot both record it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING, DESCENDING

from stores.database import Database
from stores.documents import utc_now
from stores.message_migration import (
    key_by_owner,
    merge_conversations,
    split_conversations,
    unkey_by_owner,
)

COLLECTION = "migrations"

Step = Callable[[Database], Awaitable[None]]


class MigrationError(RuntimeError):
    """A downgrade was asked for that cannot be done."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    upgrade: Step
    downgrade: Step | None = None


@dataclass(frozen=True)
class _Index:
    collection: str
    name: str
    keys: list[tuple[str, int]]
    unique: bool = False
    # Partial: only the documents that match, e.g. `{"isDeleted": False}` (live ones).
    partial: Mapping[str, Any] = field(default_factory=dict)


_INITIAL_INDEXES = [
    _Index(
        "registered_phone_numbers",
        "phoneNumber_live_unique",
        [("phoneNumber", ASCENDING)],
        unique=True,
        partial={"isDeleted": False},
    ),
    _Index("registered_phone_numbers", "userId", [("userId", ASCENDING)]),
    _Index(
        "agents",
        "incoming_lookup",
        [
            ("phoneNumber", ASCENDING),
            ("direction", ASCENDING),
            ("active", ASCENDING),
            ("isDeleted", ASCENDING),
        ],
    ),
    _Index("agents", "userId", [("userId", ASCENDING)]),
    _Index("calls", "call_sid_unique", [("call_sid", ASCENDING)], unique=True),
    _Index("calls", "status", [("status", ASCENDING)]),
    _Index("calls", "userId_start_time", [("userId", ASCENDING), ("start_time", DESCENDING)]),
    _Index("calls", "agent_id", [("agent_id", ASCENDING)]),
]


# Seed 000's conversation key: migration 3 makes it, migration 5 adds the owner to it.
_CONVERSATION_UNIQUE = _Index(
    "messages",
    "conversation_unique",
    [("agent_id", ASCENDING), ("user_number", ASCENDING)],
    unique=True,
    partial={"user_number": {"$exists": True}},  # old-shape documents have none
)

# The worker's claim: pending calls by time (migration 3; replaced by migration 7's).
_DUE = _Index("scheduled_calls", "due", [("status", ASCENDING), ("scheduledDateTime", ASCENDING)])

# Migration 3: the collections the API added, and the messages key of seed 000.
_API_INDEXES = [
    _Index("prompts", "userId", [("userId", ASCENDING), ("created_at", DESCENDING)]),
    _Index("prompts", "phoneNumberId", [("phoneNumberId", ASCENDING)]),
    _DUE,
    _Index("scheduled_calls", "userId", [("userId", ASCENDING), ("created_at", DESCENDING)]),
    _CONVERSATION_UNIQUE,
    _Index("messages", "userId", [("userId", ASCENDING), ("updated_at", DESCENDING)]),
    _Index("api_keys", "keyHash_unique", [("keyHash", ASCENDING)], unique=True),
]

# Migration 4: the call log's default order, active calls first and then the newest.
_CALL_LOG_INDEXES = [
    _Index(
        "calls",
        "userId_status_start_time",
        [("userId", ASCENDING), ("status", ASCENDING), ("start_time", DESCENDING)],
    ),
]


# Migration 5: a conversation per owner, so a number's next owner starts afresh.
_CONVERSATION_OWNER_UNIQUE = _Index(
    "messages",
    "conversation_owner_unique",
    [("userId", ASCENDING), ("agent_id", ASCENDING), ("user_number", ASCENDING)],
    unique=True,
    partial={"user_number": {"$exists": True}},
)


def _creating(indexes: list[_Index]) -> Step:
    async def create(db: Database) -> None:
        for index in indexes:
            partial = {"partialFilterExpression": index.partial} if index.partial else {}
            await db[index.collection].create_index(
                index.keys, name=index.name, unique=index.unique, **partial
            )

    return create


def _dropping(indexes: list[_Index]) -> Step:
    """Drop the indexes that exist (a run stopped half-way may have dropped some already)."""

    async def drop(db: Database) -> None:
        for index in reversed(indexes):
            if index.name in await db[index.collection].index_information():
                await db[index.collection].drop_index(index.name)

    return drop


# Migration 6: the sweeper's look-up of active calls whose heartbeat stopped. Active calls from
# before heartbeats get one now, so a call whose server is gone is swept after the usual limit.
_HEARTBEAT_INDEX = _Index(
    "calls", "status_heartbeat_at", [("status", ASCENDING), ("heartbeat_at", ASCENDING)]
)


async def _stamp_heartbeats(db: Database) -> None:
    await db["calls"].update_many(
        {"status": "active", "heartbeat_at": {"$exists": False}},
        {"$set": {"heartbeat_at": utc_now()}},
    )


def _in_turn(*steps: Step) -> Step:
    async def run(db: Database) -> None:
        for step in steps:
            await step(db)

    return run


# Migration 7: the worker's claim (live pending calls by time: with `isDeleted` in the key, the
# embedded database answers a claim in 0.7 ms instead of 18 ms over 600 pending calls), and
# scheduled calls whose worker's lease ran out.
_SCHEDULED_RUN_INDEXES = [
    _Index(
        "scheduled_calls",
        "due_live",
        [("status", ASCENDING), ("isDeleted", ASCENDING), ("scheduledDateTime", ASCENDING)],
    ),
    _Index(
        "scheduled_calls", "status_leaseUntil", [("status", ASCENDING), ("leaseUntil", ASCENDING)]
    ),
]


MIGRATIONS: list[Migration] = [
    Migration(1, "initial indexes", _creating(_INITIAL_INDEXES), _dropping(_INITIAL_INDEXES)),
    Migration(
        2,
        "messages: one document per conversation (seed 000)",
        split_conversations,
        merge_conversations,
    ),
    Migration(3, "API collection indexes", _creating(_API_INDEXES), _dropping(_API_INDEXES)),
    Migration(
        4, "call log: active first", _creating(_CALL_LOG_INDEXES), _dropping(_CALL_LOG_INDEXES)
    ),
    Migration(
        5,
        "messages: one conversation per owner",
        # The old key's index goes first: the re-keyed documents of two owners share its key.
        _in_turn(
            _dropping([_CONVERSATION_UNIQUE]),
            key_by_owner,
            _creating([_CONVERSATION_OWNER_UNIQUE]),
        ),
        _in_turn(
            _dropping([_CONVERSATION_OWNER_UNIQUE]),
            unkey_by_owner,
            _creating([_CONVERSATION_UNIQUE]),
        ),
    ),
    Migration(
        6,
        "calls: heartbeats",
        _in_turn(_creating([_HEARTBEAT_INDEX]), _stamp_heartbeats),
        _dropping([_HEARTBEAT_INDEX]),
    ),
    Migration(
        7,
        "scheduled calls: claims and leases",
        _in_turn(_dropping([_DUE]), _creating(_SCHEDULED_RUN_INDEXES)),
        _in_turn(_dropping(_SCHEDULED_RUN_INDEXES), _creating([_DUE])),
    ),
]


async def applied_versions(db: Database) -> list[int]:
    """The versions recorded as applied, ascending."""
    records = await db[COLLECTION].find({}, {"version": 1}).to_list(None)
    return sorted(int(record["version"]) for record in records)


async def pending(db: Database) -> list[Migration]:
    """The migrations not yet applied, in the order `upgrade` would run them."""
    applied = set(await applied_versions(db))
    return sorted(
        (migration for migration in MIGRATIONS if migration.version not in applied),
        key=lambda migration: migration.version,
    )


async def upgrade(db: Database) -> list[Migration]:
    """Apply every pending migration in order, recording each; returns those applied."""
    done = await pending(db)
    for migration in done:
        await migration.upgrade(db)
        record = {
            "_id": migration.version,
            "version": migration.version,
            "name": migration.name,
            "applied_at": utc_now(),
        }
        await db[COLLECTION].insert_one(record)
    return done


async def downgrade(db: Database, to_version: int) -> list[Migration]:
    """Undo applied migrations newer than `to_version`, newest first; returns those undone.

    Raises MigrationError, before changing anything, if one of them has no downgrade.
    """
    applied = set(await applied_versions(db))
    undo = sorted(
        (m for m in MIGRATIONS if m.version in applied and m.version > to_version),
        key=lambda migration: migration.version,
        reverse=True,
    )
    irreversible = [m.version for m in undo if m.downgrade is None]
    if irreversible:
        raise MigrationError(f"migrations {irreversible} have no downgrade")
    for migration in undo:
        assert migration.downgrade is not None
        await migration.downgrade(db)
        await db[COLLECTION].delete_one({"_id": migration.version})
    return undo
