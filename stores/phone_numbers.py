"""Phone numbers: the one E.164 normaliser and the `registered_phone_numbers` collection."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import phonenumbers
from pydantic import AfterValidator, BaseModel, Field, JsonValue

from stores.database import Database
from stores.directory import Directory
from stores.documents import UtcDatetime, from_document
from stores.owned import Listing, ListQuery, OwnedCollection
from stores.secrets import SecretBox

COLLECTION = "registered_phone_numbers"
# Clients send the auth token; it never comes back (it is stored sealed, see stores.secrets).
WRITE_ONLY: dict[str, JsonValue] = {"writeOnly": True}


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


class PhoneNumberFields(BaseModel):
    """What an owner sets on a number. The auth token is write-only: it is stored sealed."""

    phoneNumber: E164
    provider: Literal["twilio"] = "twilio"
    twilioAccountSid: str = Field(min_length=1)
    twilioAuthToken: str = Field(min_length=1, repr=False, json_schema_extra=WRITE_ONLY)
    isActive: bool = True


class PhoneNumberCreate(PhoneNumberFields):
    userId: str


class PhoneNumberUpdate(BaseModel):
    """A partial change; absent (or null) fields are left as they are."""

    phoneNumber: E164 | None = None
    twilioAccountSid: str | None = Field(default=None, min_length=1)
    twilioAuthToken: str | None = Field(
        default=None, min_length=1, repr=False, json_schema_extra=WRITE_ONLY
    )
    isActive: bool | None = None


class PhoneNumberView(BaseModel):
    """A stored number as clients see it: everything but the auth token."""

    id: str
    uuid: str
    phoneNumber: str
    provider: str
    twilioAccountSid: str
    userId: str
    isActive: bool
    isDeleted: bool
    created_at: UtcDatetime
    updated_at: UtcDatetime


class PhoneNumber(PhoneNumberView):
    """A stored number; `twilioAuthToken` is the sealed text, opened only by `auth_token`."""

    twilioAuthToken: str = Field(repr=False, exclude=True)


class PhoneNumberStore:
    """The `registered_phone_numbers` collection; `box` seals and opens the auth tokens.

    Given the app's `directory` (`stores.directory`), `find_registered` answers from it and
    every write here empties it; without one, every read goes to the database.
    """

    def __init__(self, db: Database, box: SecretBox, directory: Directory | None = None) -> None:
        self._collection = db[COLLECTION]
        self._owned = OwnedCollection(self._collection, PhoneNumber)
        self._box = box
        self._directory = directory or Directory(unfollowed_max_age_s=0)

    async def create(self, data: PhoneNumberCreate) -> PhoneNumber:
        """Insert a number. Raises pymongo's DuplicateKeyError if a live record has it."""
        fields = data.model_dump(exclude={"userId", "twilioAuthToken"})
        fields |= {
            "twilioAuthToken": self._box.seal(data.twilioAuthToken),
            "uuid": str(uuid.uuid4()),
        }
        return await self._directory.written(self._owned.insert(data.userId, fields))

    async def get(self, user_id: str, number_id: str) -> PhoneNumber | None:
        """The owner's live number with this id; None for anyone else's, or a deleted one."""
        return await self._owned.get(user_id, number_id)

    async def page(self, user_id: str, query: ListQuery) -> Listing[PhoneNumber]:
        return await self._owned.find(user_id, query)

    async def update(
        self, user_id: str, number_id: str, change: PhoneNumberUpdate
    ) -> PhoneNumber | None:
        """Apply `change` to the owner's number. Raises DuplicateKeyError like `create`."""
        fields = change.model_dump(exclude_none=True, exclude={"twilioAuthToken"})
        if change.twilioAuthToken is not None:
            fields["twilioAuthToken"] = self._box.seal(change.twilioAuthToken)
        return await self._directory.written(self._owned.update(user_id, number_id, fields))

    async def delete(self, user_id: str, number_id: str) -> bool:
        return await self._directory.written(self._owned.soft_delete(user_id, number_id))

    def auth_token(self, number: PhoneNumber) -> str:
        """The number's Twilio auth token, for a signature check or a Twilio API call only.

        Raises stores.secrets.SecretUnreadable if it was sealed under another key.
        """
        return self._box.open(number.twilioAuthToken)

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
        token and id even for an inactive number), from the directory if it holds it. Raises
        InvalidPhoneNumber like find_active."""
        number = normalize_phone_number(phone_number)
        return await self._directory.through(
            ("number", number), PhoneNumber, lambda: self._read_registered(number)
        )

    async def _read_registered(self, number: str) -> PhoneNumber | None:
        document = await self._collection.find_one({"phoneNumber": number, "isDeleted": False})
        return None if document is None else from_document(PhoneNumber, document)
