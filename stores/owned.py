"""Documents owned by one user: the tenant-scoped reads and writes the API collections share.

Every query here carries the owner's `userId` (and `isDeleted: false` for collections with soft
delete), so another user's document, or a deleted one, looks exactly like one that does not
exist: None or False, never an error that would tell the two apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic

from bson import ObjectId
from pydantic import AfterValidator, BeforeValidator, Field
from pymongo import ReturnDocument

from stores.database import Collection
from stores.documents import M, from_document, object_id, utc_now

MAX_PAGE = 100


def _object_id_text(value: str) -> str:
    if object_id(value) is None:
        raise ValueError("must be a 24-character hexadecimal id")
    return value


def _from_object_id(value: object) -> object:
    return str(value) if isinstance(value, ObjectId) else value


# A reference to another document: stored as an ObjectId, read and written by clients as text.
IdText = Annotated[
    str,
    BeforeValidator(_from_object_id),
    AfterValidator(_object_id_text),
    Field(pattern="^[0-9a-fA-F]{24}$", examples=["66a1f0c2e4b0a1b2c3d4e5f6"]),
]


@dataclass(frozen=True)
class ListQuery:
    """One page of a list: equality `filters`, a sort field, and `limit` / `offset`."""

    filters: Mapping[str, Any] = field(default_factory=dict)
    sort: str = "created_at"
    descending: bool = True
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE or self.offset < 0:
            raise ValueError(f"limit must be 1..{MAX_PAGE} and offset >= 0")


@dataclass(frozen=True)
class Listing(Generic[M]):
    """A page of documents, and whether more follow it."""

    items: list[M]
    has_more: bool


class OwnedCollection(Generic[M]):
    """One collection read and written as `model`, always within one owner's documents."""

    def __init__(
        self,
        collection: Collection,
        model: type[M],
        *,
        soft_delete: bool = True,
        projection: Mapping[str, Any] | None = None,
    ) -> None:
        """`projection` shapes every read (e.g. leaving out a long array for a list view)."""
        self.collection = collection
        self._model = model
        self._soft_delete = soft_delete
        self._projection = projection

    def scope(self, user_id: str, **query: Any) -> dict[str, Any]:
        """`query` narrowed to the owner's live documents."""
        live = {"isDeleted": False} if self._soft_delete else {}
        return {**query, **live, "userId": user_id}

    async def insert(self, user_id: str, fields: Mapping[str, Any]) -> M:
        """Store a new document with the owner, `isDeleted` and both timestamps set here."""
        now = utc_now()
        document = {**fields, "userId": user_id, "created_at": now, "updated_at": now}
        if self._soft_delete:
            document["isDeleted"] = False
        await self.collection.insert_one(document)
        return from_document(self._model, document)

    async def get(self, user_id: str, doc_id: str) -> M | None:
        oid = object_id(doc_id)
        if oid is None:
            return None
        document = await self.collection.find_one(self.scope(user_id, _id=oid), self._projection)
        return None if document is None else from_document(self._model, document)

    async def find(self, user_id: str, query: ListQuery) -> Listing[M]:
        """A page of the owner's documents; one extra is read to learn whether more follow."""
        order = -1 if query.descending else 1
        cursor = self.collection.find(
            self.scope(user_id, **query.filters),
            self._projection,
            sort=[(query.sort, order), ("_id", order)],
            skip=query.offset,
            limit=query.limit + 1,
        )
        documents = await cursor.to_list(None)
        items = [from_document(self._model, document) for document in documents[: query.limit]]
        return Listing(items, has_more=len(documents) > query.limit)

    async def update(self, user_id: str, doc_id: str, fields: Mapping[str, Any]) -> M | None:
        """Set `fields` (and `updated_at`); the document after, or None if the owner has none.

        Raises pymongo's DuplicateKeyError when the change collides with a unique index.
        """
        oid = object_id(doc_id)
        if oid is None:
            return None
        document = await self.collection.find_one_and_update(
            self.scope(user_id, _id=oid),
            {"$set": {**fields, "updated_at": utc_now()}},
            return_document=ReturnDocument.AFTER,
        )
        return None if document is None else from_document(self._model, document)

    async def soft_delete(self, user_id: str, doc_id: str) -> bool:
        """Mark the owner's document deleted; False if there was none to delete."""
        return await self.update(user_id, doc_id, {"isDeleted": True}) is not None
