from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from stores.phone_numbers import (
    InvalidPhoneNumber,
    PhoneNumberCreate,
    PhoneNumberStore,
    normalize_phone_number,
)
from tests.stores.factories import BOX, phone_number

Db = AsyncDatabase[dict[str, Any]]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+15551234567", "+15551234567"),
        ("(555) 123-4567", "+15551234567"),
        ("555.123.4567", "+15551234567"),
        ("1 555 123 4567", "+15551234567"),
        ("  +1 (866) 813-4984 ", "+18668134984"),
        ("+44 20 7946 0958", "+442079460958"),
        ("020 7946 0958", "+442079460958"),  # read as a UK number only with region GB
    ],
)
def test_normalises_to_e164(raw: str, expected: str) -> None:
    region = "GB" if raw.startswith("020") else "US"
    assert normalize_phone_number(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("hello", "letters"),
        ("1-800-FLOWERS", "letters"),
        ("123", "not a possible number"),
        ("+1555", "not a possible number"),
        ("+", "cannot be parsed"),
        ("+999 123 456 789", "cannot be parsed"),
    ],
)
def test_refuses_what_is_not_a_number(raw: str, message: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=message):
        normalize_phone_number(raw)


def test_model_normalises() -> None:
    assert phone_number("(555) 123-4567").phoneNumber == "+15551234567"


async def test_create_and_find_active(database: Db) -> None:
    store = PhoneNumberStore(database, BOX)
    created = await store.create(phone_number("+15551234567"))
    assert created.isDeleted is False
    assert created.created_at == created.updated_at
    assert created.created_at.tzinfo is not None
    assert await store.find_active("555-123-4567") == created
    assert await store.find_active("+15550000000") is None


async def test_inactive_number_is_not_found(database: Db) -> None:
    store = PhoneNumberStore(database, BOX)
    await store.create(phone_number("+15551234567", isActive=False))
    assert await store.find_active("+15551234567") is None


async def test_a_live_number_is_registered_once(database: Db) -> None:
    store = PhoneNumberStore(database, BOX)
    await store.create(phone_number("+15551234567"))
    with pytest.raises(DuplicateKeyError):
        await store.create(phone_number("555 123 4567"))


async def test_a_deleted_number_can_be_registered_again(database: Db) -> None:
    store = PhoneNumberStore(database, BOX)
    old = await store.create(phone_number("+15551234567"))
    await database["registered_phone_numbers"].update_one(
        {"uuid": old.uuid}, {"$set": {"isDeleted": True}}
    )
    new = await store.create(phone_number("+15551234567"))
    assert await store.find_active("+15551234567") == new


def test_create_model_rejects_bad_number() -> None:
    with pytest.raises(ValueError, match="letters"):
        PhoneNumberCreate(
            phoneNumber="call me", twilioAccountSid="AC1", twilioAuthToken="t", userId="u"
        )
