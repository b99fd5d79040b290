"""API keys: the `api_keys` collection; each key belongs to one `userId`.

A key is 32 random bytes (`vsk_` + url-safe base64), shown once when it is created. Only its
SHA-256 digest is stored: with that much entropy a plain digest cannot be reversed, and a look-up
by digest is one indexed query per request (a slow password hash would cost every request).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from pydantic import BaseModel

from stores.database import Database
from stores.documents import UtcDatetime, from_document, object_id, utc_now

COLLECTION = "api_keys"
PREFIX = "vsk_"


class ApiKey(BaseModel):
    id: str
    userId: str
    label: str
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None = None


@dataclass(frozen=True)
class IssuedKey:
    """A new key: its record, and the secret the holder sends as `Authorization: Bearer`."""

    key: ApiKey
    secret: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyStore:
    """The `api_keys` collection."""

    def __init__(self, db: Database) -> None:
        self._collection = db[COLLECTION]

    async def create(self, user_id: str, label: str = "") -> IssuedKey:
        if not user_id.strip():
            raise ValueError("an API key needs a user id")
        secret = PREFIX + secrets.token_urlsafe(32)
        document = {
            "userId": user_id,
            "label": label,
            "keyHash": _digest(secret),
            "created_at": utc_now(),
            "revoked_at": None,
        }
        await self._collection.insert_one(document)
        return IssuedKey(from_document(ApiKey, document), secret)

    async def live_key(self, secret: str) -> ApiKey | None:
        """The live key whose secret this is; None for an unknown or revoked one."""
        query = {"keyHash": _digest(secret), "revoked_at": None}
        document = await self._collection.find_one(query, {"keyHash": 0})
        return None if document is None else from_document(ApiKey, document)

    async def live_user(self, key_id: str) -> str | None:
        """The `userId` of the live key with this id; None if it is revoked or unknown."""
        oid = object_id(key_id)
        if oid is None:
            return None
        document = await self._collection.find_one({"_id": oid, "revoked_at": None}, {"userId": 1})
        return None if document is None else str(document["userId"])

    async def revoke(self, key_id: str) -> bool:
        """Revoke the key; False if there is no such live key."""
        oid = object_id(key_id)
        if oid is None:
            return False
        result = await self._collection.update_one(
            {"_id": oid, "revoked_at": None}, {"$set": {"revoked_at": utc_now()}}
        )
        return result.modified_count == 1
