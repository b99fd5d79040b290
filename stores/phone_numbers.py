"""Phone numbers: the one E.164 normaliser and the `registered_phone_numbers` collection."""

from __future__ import annotations

import uuid
from typing import Annotated

import phonenumbers
from pydantic import AfterValidator, BaseModel

from stores.database import Database
from stores.documents import UtcDatetime, from_document, utc_now

COLLECTION = "registered_phone_numbers"


class InvalidPhoneNumber(ValueError):
    """The text is not a possible phone number, so it cannot be put in E.164 form."""


def normalize_phone_number(raw: str, default_region: str = "US") -> str:
    """Return `raw` in E.164 (`+15551234567`); numbers without `+` are read in `default_region`.

    Raises InvalidPhoneNumber for empty text, letters (vanity spellings are refused) and
    anything the `phonenumbers` library does not consider a possible number.
    """
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("phone number is empty")
    if any(char.isalpha() for char in text):
        raise InvalidPhoneNumber(f"phone number {raw!r} contains letters")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as error:
        raise InvalidPhoneNumber(f"phone number {raw!r} cannot be parsed: {error}") from error
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber(f"phone number {raw!r} is not a possible number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


E164 = Annotated[str, AfterValidator(normalize_phone_number)]


class PhoneNumberCreate(BaseModel):
    phoneNumber: E164
    provider: str = "twilio"
    twilioAccountSid: str
    twilioAuthToken: str
    userId: str
    isActive: bool = True


class PhoneNumber(PhoneNumberCreate):
    id: str
    uuid: str
    isDeleted: bool
    created_at: UtcDatetime
    updated_at: UtcDatetime


class PhoneNumberStore:
    """The `registered_phone_numbers` collection."""

    def __init__(self, db: Database) -> None:
        self._collection = db[COLLECTION]

    async def create(self, data: PhoneNumberCreate) -> PhoneNumber:
        """Insert a number. Raises pymongo's DuplicateKeyError if a live record has it."""
        now = utc_now()
        document = {
            **data.model_dump(),
            "uuid": str(uuid.uuid4()),
            "isDeleted": False,
            "created_at": now,
            "updated_at": now,
        }
        await self._collection.insert_one(document)
        return from_document(PhoneNumber, document)

    async def find_active(self, phone_number: str) -> PhoneNumber | None:
        """The active, non-deleted record of `phone_number` (any format; see the normaliser).

        Raises InvalidPhoneNumber if `phone_number` cannot be normalised.
        """
        query = {
            "phoneNumber": normalize_phone_number(phone_number),
            "isActive": True,
            "isDeleted": False,
        }
        document = await self._collection.find_one(query)
        return None if document is None else from_document(PhoneNumber, document)

    async def find_registered(self, phone_number: str) -> PhoneNumber | None:
        """The non-deleted record of `phone_number`, active or not (webhooks need the owner's
        token and id even for an inactive number). Raises InvalidPhoneNumber like find_active."""
        query = {"phoneNumber": normalize_phone_number(phone_number), "isDeleted": False}
        document = await self._collection.find_one(query)
        return None if document is None else from_document(PhoneNumber, document)
