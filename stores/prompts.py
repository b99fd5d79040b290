"""Prompts: the `prompts` collection, texts an owner keeps for outgoing AI calls.

`phoneNumberId` is stored as an ObjectId naming one of the owner's registered numbers (the
application checks that before it writes) and is read and written by clients as text.
"""

from __future__ import annotations

from typing import Annotated, Any

from bson import ObjectId
from pydantic import BaseModel, Field

from stores.database import Database
from stores.documents import UtcDatetime
from stores.owned import IdText, Listing, ListQuery, OwnedCollection

COLLECTION = "prompts"
Text = Annotated[str, Field(min_length=1)]


class PromptFields(BaseModel):
    name: Text
    content: Text
    phoneNumberId: IdText
    description: str | None = None
    category: Text = "general"


class PromptCreate(PromptFields):
    userId: str


class PromptUpdate(BaseModel):
    """A partial change; absent (or null) fields are left as they are."""

    name: str | None = Field(default=None, min_length=1)
    content: str | None = Field(default=None, min_length=1)
    phoneNumberId: IdText | None = None
    description: str | None = None
    category: str | None = Field(default=None, min_length=1)


class Prompt(PromptCreate):
    id: str
    isDeleted: bool
    created_at: UtcDatetime
    updated_at: UtcDatetime


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    if "phoneNumberId" in fields:
        fields["phoneNumberId"] = ObjectId(fields["phoneNumberId"])
    return fields


class PromptStore:
    """The `prompts` collection, always within one owner's prompts."""

    def __init__(self, db: Database) -> None:
        self._owned = OwnedCollection(db[COLLECTION], Prompt)

    async def create(self, data: PromptCreate) -> Prompt:
        return await self._owned.insert(data.userId, _stored(data.model_dump(exclude={"userId"})))

    async def get(self, user_id: str, prompt_id: str) -> Prompt | None:
        """The owner's live prompt with this id; None for anyone else's, or a deleted one."""
        return await self._owned.get(user_id, prompt_id)

    async def page(self, user_id: str, query: ListQuery) -> Listing[Prompt]:
        """A page of prompts; a `phoneNumberId` filter is given as text."""
        return await self._owned.find(user_id, _with_object_ids(query))

    async def update(self, user_id: str, prompt_id: str, change: PromptUpdate) -> Prompt | None:
        fields = _stored(change.model_dump(exclude_none=True))
        return await self._owned.update(user_id, prompt_id, fields)

    async def delete(self, user_id: str, prompt_id: str) -> bool:
        return await self._owned.soft_delete(user_id, prompt_id)


def _with_object_ids(query: ListQuery) -> ListQuery:
    filters = _stored(dict(query.filters))
    return ListQuery(filters, query.sort, query.descending, query.limit, query.offset)
